"""Where the train step runs: state building, batch placement and the jitted step, for one device or a mesh.

`make_runtime(exp)` reads the experiment's ParallelConfig: a layout of one device gets `SingleDevice` (plain jit,
donated state); a larger one gets `Sharded`, a thin adapter over the parallelism code's
`build_sharded_training` (mesh, RULES-derived shardings, distributed optimizer, pipeline). Both give the loop:

    data_parallel            rows of one accumulation microbatch = batch.micro_batch x data_parallel
    fresh_state(task, rng)   a new TrainState, created directly in its shardings
    state_from(params)       a TrainState around given parameters (init_from)
    abstract_state(task)     ShapeDtypeStructs with shardings: the restore target (any saved layout reads into it)
    put_batch(host batch)    this process's rows -> global arrays [A, b, ...]
    step(state, batch)       the jitted, state-donating train step
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

import jax
import numpy as np
import optax

from nemotron_jax.config import Experiment
from nemotron_jax.parallel.mesh import layout_devices
from nemotron_jax.train.state import TrainState
from nemotron_jax.train.step import make_train_step


class Runtime(Protocol):
    data_parallel: int
    num_devices: int

    def build(self, task: Any, optimizer: optax.GradientTransformation) -> None: ...

    def fresh_state(self, rng: jax.Array) -> TrainState: ...

    def state_from(self, params: Any) -> TrainState: ...

    def abstract_state(self) -> TrainState: ...

    def put_batch(self, batch: dict[str, np.ndarray]) -> Any: ...

    def step(self, state: TrainState, batch: Any) -> tuple[TrainState, dict]: ...


def _with_shardings(shapes: Any, shardings: Any) -> Any:
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), shapes, shardings)


class SingleDevice:
    """Everything on one device: jit(init), jit(step, donate state)."""

    data_parallel = 1
    num_devices = 1

    def __init__(self, exp: Experiment, device: Optional[jax.Device] = None) -> None:
        self.sharding = jax.sharding.SingleDeviceSharding(device or jax.local_devices()[0])
        self._create: Optional[Callable] = None
        self._fresh: Optional[Callable] = None
        self._step: Optional[Callable] = None

    def build(self, task: Any, optimizer: optax.GradientTransformation) -> None:
        """Jit state creation and the step for `task` (a train.tasks.Task) and `optimizer`."""
        create = lambda params: TrainState.create(params, optimizer)
        self._create = jax.jit(create, out_shardings=self.sharding)
        self._fresh = jax.jit(lambda rng: create(task.init_params(rng)), out_shardings=self.sharding)
        self._step = jax.jit(make_train_step(task.loss_fn, optimizer), donate_argnums=0)

    def fresh_state(self, rng: jax.Array) -> TrainState:
        return self._fresh(rng)

    def state_from(self, params: Any) -> TrainState:
        # a device copy, so a donating step never consumes buffers the caller still holds
        return self._create(jax.tree.map(lambda p: jax.device_put(np.asarray(p), self.sharding), params))

    def abstract_state(self) -> TrainState:
        shapes = jax.eval_shape(self._fresh, jax.random.key(0))
        return _with_shardings(shapes, jax.tree.map(lambda _: self.sharding, shapes))

    def put_batch(self, batch: dict[str, np.ndarray]) -> Any:
        return jax.device_put(batch, self.sharding)

    def step(self, state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        return self._step(state, batch)

    def compiled_steps(self) -> int:
        """How many step variants were compiled (one per distinct accumulation count)."""
        return self._step._cache_size()


class Sharded:
    """A mesh from exp.parallel; shardings, init and step from nemotron_jax.parallel.training."""

    def __init__(self, exp: Experiment, devices: list[jax.Device]) -> None:
        from nemotron_jax.parallel.mesh import axis_sizes

        self.exp, self.devices, self.num_devices = exp, devices, len(devices)
        sizes = axis_sizes(exp.parallel, len(devices))
        self.data_parallel = sizes["data"] * sizes["fsdp"]
        self.training = None
        self._fresh: Optional[Callable] = None
        self._create: Optional[Callable] = None

    def build(self, task: Any, optimizer: optax.GradientTransformation) -> None:
        from nemotron_jax.parallel.training import build_sharded_training

        rows = self.exp.batch.micro_batch * self.data_parallel
        logical = task.logical_axes() if getattr(task, "logical_axes", None) else None
        self.training = build_sharded_training(self.exp.model, self.exp.parallel, optimizer, task.loss_fn,
                                               devices=self.devices, batch=rows, seq_len=self.exp.batch.seq_len,
                                               init_params_fn=task.init_params, param_logical_axes=logical)
        self._create = jax.jit(lambda params: TrainState.create(params, optimizer),
                               out_shardings=self.training.state_shardings)
        self._fresh = self.training.init_fn

    def fresh_state(self, rng: jax.Array) -> TrainState:
        return self.training.init_fn(rng)

    def state_from(self, params: Any) -> TrainState:
        params = jax.device_put(params, self.training.state_shardings.params)
        with self.training.activate():
            return self._create(params)

    def abstract_state(self) -> TrainState:
        with self.training.activate():  # the mesh is set out here: init_fn sets it itself, which tracing refuses
            shapes = jax.eval_shape(self.training.init_jit, jax.random.key(0))
        return _with_shardings(shapes, self.training.state_shardings)

    def put_batch(self, batch: dict[str, np.ndarray]) -> Any:
        sharding = self.training.batch_sharding
        if jax.process_count() == 1:
            return jax.device_put(batch, sharding)
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)

    def step(self, state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        return self.training.step_fn(state, batch)


def make_runtime(exp: Experiment) -> Runtime:
    """The runtime `exp.parallel` asks for."""
    n = layout_devices(exp.parallel, jax.device_count())
    if n == 1:
        return SingleDevice(exp)
    return Sharded(exp, jax.devices()[:n])
