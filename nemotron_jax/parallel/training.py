"""Sharded training: state built straight into its shardings, one jitted step with donated state.

    abstract = eval_shape(init)                       # no allocation
    logical  = model.logical_axes(cfg)                # names from the model code
    specs    = RULES(logical) (+ data axis on optimizer moments: the distributed optimizer)
    init_fn  = jit(init, out_shardings=specs)         # params AND optimizer state created sharded, in one jit
    step_fn  = jit(train_step, in/out_shardings=specs, donate_argnums=0)

Tensor/sequence parallelism, FSDP and data parallelism come from RULES plus XLA's SPMD partitioner; pipeline
parallelism from `pipeline.pipelined_layers`, reached through `make_forward`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nemotron_jax.config import ConfigError, ModelConfig, ParallelConfig
from nemotron_jax.model.transformer import forward, forward_hidden, init_params, logical_axes
from nemotron_jax.parallel.axes import DATA, FSDP, RULES, mesh_specs, rules_for, unresolved_axes
from nemotron_jax.parallel.mesh import layout_devices, make_mesh, validate
from nemotron_jax.parallel.pipeline import pipelined_layers
from nemotron_jax.train.optim import decay_mask
from nemotron_jax.train.state import TrainState
from nemotron_jax.train.step import LossFn, make_train_step

Params = Any


# ------------------------------------------------------------------------------------------------------------
# Forward functions for loss code
# ------------------------------------------------------------------------------------------------------------


def layers_fn_for(cfg: ModelConfig, pcfg: ParallelConfig) -> Optional[Callable]:
    """The pipelined layer stack when pipeline > 1, else None (the model's own scan)."""
    return pipelined_layers(cfg, pcfg) if pcfg.pipeline > 1 else None


def make_forward(cfg: ModelConfig, pcfg: ParallelConfig, mesh: Optional[Mesh] = None) -> Callable:
    """`fwd(params, tokens, *, positions=None, segment_ids=None) -> fp32 logits`, pipelined if the layout says so."""
    del mesh  # sharding constraints read the mesh set by `activate` at trace time
    layers_fn = layers_fn_for(cfg, pcfg)

    def fwd(params: Params, tokens: jax.Array, *, positions=None, segment_ids=None) -> jax.Array:
        return forward(params, tokens, cfg, positions=positions, segment_ids=segment_ids, layers_fn=layers_fn)

    return fwd


def make_forward_hidden(cfg: ModelConfig, pcfg: ParallelConfig, mesh: Optional[Mesh] = None) -> Callable:
    """Like `make_forward` but returns the final-normed hidden states [B, T, D] (reward heads read these)."""
    del mesh
    layers_fn = layers_fn_for(cfg, pcfg)

    def fwd(params: Params, tokens: jax.Array, *, positions=None, segment_ids=None) -> jax.Array:
        return forward_hidden(params, tokens, cfg, positions=positions, segment_ids=segment_ids,
                              layers_fn=layers_fn)

    return fwd


# ------------------------------------------------------------------------------------------------------------
# Shardings
# ------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def activate(mesh: Mesh, pcfg: ParallelConfig) -> Iterator[None]:
    """Mesh + logical rules in scope: trace sharded code (and call anything that traces) inside this."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules_for(pcfg.sequence_parallel)):
        yield


def param_specs(cfg: ModelConfig, pcfg: ParallelConfig) -> Params:
    """Mesh PartitionSpecs for every parameter, from the model's logical names through RULES."""
    return mesh_specs(logical_axes(cfg), rules_for(pcfg.sequence_parallel))


def _entries(spec: PartitionSpec, ndim: int) -> list:
    return list(spec) + [None] * (ndim - len(spec))


def add_data_axis(spec: PartitionSpec, shape: Sequence[int], sizes: dict[str, int]) -> PartitionSpec:
    """Also shard over `data` (the distributed optimizer): on the first free dim it divides, else stack onto one."""
    n = sizes[DATA]
    entries = _entries(spec, len(shape))
    if n == 1 or any(DATA in (e if isinstance(e, tuple) else (e,)) for e in entries):
        return spec
    for d, e in enumerate(entries):
        if e is None and shape[d] % n == 0:
            entries[d] = DATA
            return PartitionSpec(*entries)
    for d, e in enumerate(entries):
        axes = e if isinstance(e, tuple) else (e,)
        if e is not None and shape[d] % (n * int(np.prod([sizes[a] for a in axes]))) == 0:
            entries[d] = (*axes, DATA)
            return PartitionSpec(*entries)
    return spec  # too small to split: stays as the parameter is


def _path_keys(path: tuple) -> tuple:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def opt_state_specs(opt_shapes: Any, params_shapes: Params, pspecs: Params, sizes: dict[str, int],
                    shard_optimizer: bool) -> Any:
    """Specs for the optimizer state: a leaf shaped like a parameter (matched by path suffix) follows that
    parameter's spec (+ `data` with the distributed optimizer); counters and the like are replicated."""
    flat_p = jax.tree_util.tree_flatten_with_path(params_shapes)[0]
    flat_s = jax.tree.leaves(pspecs, is_leaf=lambda x: isinstance(x, PartitionSpec))
    by_path = {_path_keys(p): (x.shape, s) for (p, x), s in zip(flat_p, flat_s)}

    def spec_for(path: tuple, leaf: Any) -> PartitionSpec:
        keys = _path_keys(path)
        for n in range(len(keys), 0, -1):
            hit = by_path.get(keys[-n:])
            if hit is not None and tuple(hit[0]) == tuple(leaf.shape):
                return add_data_axis(hit[1], leaf.shape, sizes) if shard_optimizer else hit[1]
        return PartitionSpec()

    return jax.tree_util.tree_map_with_path(spec_for, opt_shapes)


def compute_param_specs(cfg: ModelConfig, pcfg: ParallelConfig,
                        param_logical_axes: Optional[Params] = None) -> Params:
    """The layout the forward/backward reads parameters in: RULES applied to their logical names."""
    logical = logical_axes(cfg) if param_logical_axes is None else param_logical_axes
    unknown = unresolved_axes(logical, RULES)
    if unknown:
        raise ConfigError(f"parameter axis names {sorted(unknown)} have no entry in parallel/axes.py RULES; add a "
                          "rule for each (None = replicated) so the layout is decided in one place")
    return mesh_specs(logical, rules_for(pcfg.sequence_parallel))


def _map_specs(fn: Callable, specs: Params, shapes: Params) -> Params:
    return jax.tree.map(fn, specs, shapes, is_leaf=lambda x: isinstance(x, PartitionSpec))


def state_specs(cfg: ModelConfig, pcfg: ParallelConfig, optimizer: optax.GradientTransformation,
                sizes: dict[str, int], *, init_params_fn: Optional[Callable] = None,
                param_logical_axes: Optional[Params] = None) -> TrainState:
    """A TrainState-shaped tree of PartitionSpecs (no allocation); defaults to the LM's parameter tree.

    With the distributed optimizer the fp32 masters and the Adam moments are also split over `data`.
    """
    init_params_fn = init_params_fn or (lambda rng: init_params(cfg, rng))
    abstract = jax.eval_shape(lambda: TrainState.create(init_params_fn(jax.random.key(0)), optimizer))
    pspecs = compute_param_specs(cfg, pcfg, param_logical_axes)
    if pcfg.shard_optimizer:
        pspecs = _map_specs(lambda s, x: add_data_axis(s, x.shape, sizes), pspecs, abstract.params)
    ospecs = opt_state_specs(abstract.opt_state, abstract.params, pspecs, sizes, pcfg.shard_optimizer)
    scalar = PartitionSpec()
    return TrainState(step=scalar, params=pspecs, opt_state=ospecs, nonfinite_in_a_row=scalar,
                      nonfinite_total=scalar)


def compute_cast_mask(params: Params) -> Params:
    """True for the matmul weights that the step casts to the compute dtype once per step.

    Norms and biases stay fp32 (the model reads them in fp32). So does the embedding table: it is gathered, not
    multiplied, and its gradient is a scatter-add over repeated tokens that must accumulate in fp32.
    """
    not_embedding = jax.tree_util.tree_map_with_path(lambda path, _: "embedding" not in str(path[-1]), params)
    return jax.tree.map(lambda a, b: a and b, decay_mask(params), not_embedding)


def compute_copy_fn(cfg: ModelConfig, mesh: Mesh, compute_specs: Params) -> Callable[[Params], Params]:
    """fp32 masters -> the copy the step differentiates: matmul weights cast to the compute dtype (see
    `compute_cast_mask`), laid out as RULES says (an all-gather over `data` of data-sharded masters)."""
    dtype = jnp.dtype(cfg.dtype)

    def to_compute(params: Params) -> Params:
        cast = lambda p, w: p.astype(dtype) if w else p
        params = jax.tree.map(cast, params, compute_cast_mask(params))
        return _map_specs(lambda s, p: jax.lax.with_sharding_constraint(p, NamedSharding(mesh, s)),
                          compute_specs, params)

    return to_compute


def layout_fn(mesh: Mesh, specs: Params) -> Callable[[Params], Params]:
    """A sharding constraint to `specs` for a parameter-shaped tree (used on the running gradient sum)."""
    return lambda tree: _map_specs(lambda s, g: jax.lax.with_sharding_constraint(g, NamedSharding(mesh, s)),
                                   specs, tree)


def batch_spec(batch_axis: int = 1) -> PartitionSpec:
    """Batch leaves [A, b, ...]: the row axis over (data, fsdp); everything else replicated."""
    return PartitionSpec(*([None] * batch_axis), (DATA, FSDP))


def layout_shardings(cfg: ModelConfig, pcfg: ParallelConfig, *, devices: Optional[Sequence[jax.Device]] = None,
                     param_logical_axes: Optional[Params] = None) -> tuple[Mesh, Params]:
    """(mesh, NamedSharding per parameter) of a layout: the forward's parameter layout (RULES on logical names)."""
    if devices is None:
        devices = jax.devices()[:layout_devices(pcfg, jax.device_count())]
    mesh = make_mesh(pcfg, devices)
    specs = compute_param_specs(cfg, pcfg, param_logical_axes)
    return mesh, jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                              is_leaf=lambda x: isinstance(x, PartitionSpec))


def layout_target(shapes: Params, cfg: ModelConfig, pcfg: ParallelConfig, *,
                  param_logical_axes: Optional[Params] = None) -> Params:
    """`shapes` (ShapeDtypeStructs, e.g. `checkpoint.params_io.params_shapes`) with the layout's shardings: a
    restore target, so each process reads only its own shards of a checkpoint."""
    _, shardings = layout_shardings(cfg, pcfg, param_logical_axes=param_logical_axes)
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), shapes, shardings)


def sharded_apply(fn: Callable[[Params, dict], jax.Array], params: Params, cfg: ModelConfig, pcfg: ParallelConfig,
                  *, rows: int, seq_len: int, devices: Optional[Sequence[jax.Device]] = None,
                  param_logical_axes: Optional[Params] = None) -> Callable[[dict], jax.Array]:
    """Forward-only work (reference log-probs, reward scores) laid out like the train step: `run(batch)` for
    `jit(fn)(params, batch)` on the layout's mesh.

    The layout is validated for `rows` x `seq_len` first (a bad one fails before any compile), the parameters are
    placed once by RULES (`param_logical_axes` for trees other than the LM's), batch leaves [rows, ...] are split
    over (data, fsdp), and the result comes back replicated. `fn` must reach the layers through `make_forward` /
    `make_forward_hidden` when pipeline > 1. Every process passes the same host batch and gets the whole result.
    """
    if devices is None:
        devices = jax.devices()[:layout_devices(pcfg, jax.device_count())]
    validate(cfg, pcfg, num_devices=len(devices), batch=rows, seq_len=seq_len)
    mesh, shardings = layout_shardings(cfg, pcfg, devices=devices, param_logical_axes=param_logical_axes)
    placed = jax.device_put(params, shardings)  # a no-op for parameters read straight into these (layout_target)
    rows_sharding = NamedSharding(mesh, batch_spec(batch_axis=0))
    jitted = jax.jit(fn, in_shardings=(shardings, rows_sharding), out_shardings=NamedSharding(mesh, PartitionSpec()))

    def run(batch: dict) -> jax.Array:
        global_batch = {k: jax.make_array_from_callback(np.shape(v), rows_sharding, lambda i, v=v: np.asarray(v)[i])
                        for k, v in batch.items()}
        with activate(mesh, pcfg):
            return jitted(placed, global_batch)

    return run


# ------------------------------------------------------------------------------------------------------------
# The factory the loop calls
# ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ShardedTraining:
    """What a training loop needs: the mesh, a sharded init, the jitted step and the shardings (for restore)."""

    mesh: Mesh
    init_fn: Callable[[jax.Array], TrainState]  # rng -> sharded TrainState
    step_fn: Callable[[TrainState, Any], tuple[TrainState, dict]]  # donates the state
    batch_sharding: NamedSharding
    state_shardings: TrainState
    axis_sizes: dict[str, int]
    parallel: ParallelConfig
    init_jit: Any  # the raw jitted functions, for AOT `.lower(...)` inside `activate()` (HLO dumps, benchmarks)
    step_jit: Any

    def activate(self) -> contextlib.AbstractContextManager:
        """Mesh + rules in scope, for tracing extra sharded functions (eval steps, restores)."""
        return activate(self.mesh, self.parallel)

    def put_batch(self, batch: Any) -> Any:
        """Host arrays -> globally sharded arrays (single process; multi-process loops build global arrays)."""
        return jax.device_put(batch, self.batch_sharding)


def build_sharded_training(cfg: ModelConfig, pcfg: ParallelConfig, optimizer: optax.GradientTransformation,
                           loss_fn: LossFn, *, devices: Optional[Sequence[jax.Device]] = None,
                           batch: Optional[int] = None, seq_len: Optional[int] = None,
                           batch_axis: int = 1, init_params_fn: Optional[Callable] = None,
                           param_logical_axes: Optional[Params] = None) -> ShardedTraining:
    """Validate, build the mesh, and jit init and the train step with their shardings.

    `loss_fn(params, microbatch)` must call the model through `make_forward(cfg, pcfg)` when pipeline > 1.
    `batch` / `seq_len` (rows and tokens per accumulation microbatch) are checked when given. Trees other than
    the LM's (e.g. the reward model) pass `init_params_fn(rng)` and their `param_logical_axes`.
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = validate(cfg, pcfg, num_devices=len(devices), batch=batch, seq_len=seq_len)
    mesh = make_mesh(pcfg, devices)
    init_params_fn = init_params_fn or (lambda rng: init_params(cfg, rng))
    specs = state_specs(cfg, pcfg, optimizer, sizes, init_params_fn=init_params_fn,
                        param_logical_axes=param_logical_axes)
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs,
                             is_leaf=lambda x: isinstance(x, PartitionSpec))
    batch_sh = NamedSharding(mesh, batch_spec(batch_axis))
    replicated = NamedSharding(mesh, PartitionSpec())

    def init(rng: jax.Array) -> TrainState:
        return TrainState.create(init_params_fn(rng), optimizer)

    init_jit = jax.jit(init, out_shardings=shardings)
    step = make_train_step(loss_fn, optimizer,
                           compute_params=compute_copy_fn(cfg, mesh, compute_param_specs(cfg, pcfg,
                                                                                         param_logical_axes)),
                           grad_layout=layout_fn(mesh, specs.params))
    step_jit = jax.jit(step, in_shardings=(shardings, batch_sh), out_shardings=(shardings, replicated),
                       donate_argnums=0)

    def init_fn(rng: jax.Array) -> TrainState:
        with activate(mesh, pcfg):
            return init_jit(rng)

    def step_fn(state: TrainState, batch_: Any) -> tuple[TrainState, dict]:
        with activate(mesh, pcfg):
            return step_jit(state, batch_)

    return ShardedTraining(mesh=mesh, init_fn=init_fn, step_fn=step_fn, batch_sharding=batch_sh,
                           state_shardings=shardings, axis_sizes=sizes, parallel=pcfg, init_jit=init_jit,
                           step_jit=step_jit)
