"""Where the train step runs: the pieces of state building, batch placement and the jitted step the loop needs.

`make_runtime(exp)` picks one from the experiment's ParallelConfig: one device (plain jit, donated state), or -- when
the layout spans more than one device -- the sharded builder from `nemotron_jax.parallel` (issue 3).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import jax
import numpy as np
import optax

from nemotron_jax.config import ConfigError, Experiment, ParallelConfig
from nemotron_jax.train.state import TrainState
from nemotron_jax.train.step import make_train_step


class Runtime(Protocol):
    data_parallel: int  # rows of one accumulation microbatch = micro_batch x data_parallel
    num_devices: int

    def build(self, task: Any, optimizer: optax.GradientTransformation) -> None: ...

    def init_state(self, params: Any) -> TrainState: ...

    def abstract_state(self) -> TrainState: ...

    def put_batch(self, batch: dict[str, np.ndarray]) -> Any: ...

    def step(self, state: TrainState, batch: Any) -> tuple[TrainState, dict]: ...


def layout_devices(parallel: ParallelConfig, available: int) -> int:
    """Devices the layout uses, with a -1 axis taking whatever the others leave."""
    sizes = [parallel.data, parallel.fsdp, parallel.pipeline, parallel.tensor]
    fixed = math.prod(s for s in sizes if s != -1)
    return available if -1 in sizes else fixed


class SingleDevice:
    """Everything on one device: jit(init), jit(step, donate state)."""

    data_parallel = 1
    num_devices = 1

    def __init__(self, exp: Experiment, device: jax.Device | None = None) -> None:
        self.exp = exp
        self.sharding = jax.sharding.SingleDeviceSharding(device or jax.local_devices()[0])
        self._init: Callable | None = None
        self._step: Callable | None = None
        self._abstract_params = None

    def build(self, task: Any, optimizer: optax.GradientTransformation) -> None:
        """Jit the state init and the step for `task` (a train.tasks.Task) and `optimizer`."""
        self._init = jax.jit(lambda params: TrainState.create(params, optimizer), out_shardings=self.sharding)
        self._step = jax.jit(make_train_step(task.loss_fn, optimizer), donate_argnums=0)
        self._abstract_params = jax.eval_shape(task.init_params, jax.random.key(0))

    def init_state(self, params: Any) -> TrainState:
        # a copy, so a donating step never consumes buffers the caller still holds
        return self._init(jax.tree.map(lambda p: jax.device_put(np.asarray(p), self.sharding), params))

    def abstract_state(self) -> TrainState:
        shapes = jax.eval_shape(self._init, self._abstract_params)
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.sharding), shapes)

    def put_batch(self, batch: dict[str, np.ndarray]) -> Any:
        return jax.device_put(batch, self.sharding)

    def step(self, state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        return self._step(state, batch)

    def compiled_steps(self) -> int:
        """How many step variants were compiled (one per distinct accumulation count)."""
        return self._step._cache_size()


def make_runtime(exp: Experiment) -> Runtime:
    """The runtime `exp.parallel` asks for."""
    n = layout_devices(exp.parallel, jax.device_count())
    if n == 1:
        return SingleDevice(exp)
    try:
        from nemotron_jax.parallel.runtime import ShardedRuntime  # the parallelism engineer's builder (issue 3)
    except ModuleNotFoundError as e:
        raise ConfigError(f"the layout {exp.parallel} spans {n} devices but the sharded runtime "
                          f"(nemotron_jax.parallel) is not available: {e}. Use ParallelConfig(data=1) for one device.")
    return ShardedRuntime(exp)
