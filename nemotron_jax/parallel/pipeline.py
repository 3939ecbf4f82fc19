"""Interleaved (circular) pipeline parallelism over the `pipeline` mesh axis, written as one SPMD program.

P stages, V virtual stages (repeats) per stage, M microbatches, L = P·V·Lc layers. Chunk c = r·P + s (repeat r,
stage s) holds layers c·Lc … c·Lc + Lc − 1, so stage s owns chunks s, s + P, …: the circular assignment.

    params[L, ...] -> stage_params[P, V, Lc, ...]       (stage axis sharded over `pipeline`)
    x[B, T, D]     -> buffer[M, B/M, T, D]              (microbatch m = rows m, m + M, …: stays data-local)
    state[P, B/M, T, D] = 0                             (the activation each stage works on)
    for i in range(V·M + P − 1):                        # lax.scan
        w[s] = i − s                                    # work item of stage s; valid if 0 <= w < V·M
        m[s], r[s] = w mod M, w div M                   # its microbatch and repeat
        state[0] = buffer[i mod M]                      # stage 0 reads a fresh microbatch or a finished repeat
        out[s] = remat(chunk(stage_params[s, r[s]]))(state[s])   # vmapped over s: every stage at once
        if w[P−1] valid: buffer[m[P−1]] = out[P−1]      # last stage hands the microbatch back
        state = roll(out, +1, axis=stage)               # collective permute: stage s -> s + 1
    return buffer -> [B, T, D]

Stage 0 reads `buffer[m]` for repeat r at iteration r·M + m; the last stage wrote it at (r−1)·M + m + P − 1, which
is earlier exactly when M >= P (checked by `validate`). Bubble: each stage idles P − 1 of its V·M + P − 1
iterations, (P − 1) / (V·M + P − 1). Idle stages compute on stale data whose results are never read, so they add
no gradient. Autodiff of the scan is GPipe-like: each iteration keeps only its stage input (the chunk is
rematerialised in the backward pass), V·M + P − 1 microbatch activations per device, plus the [M, ...] buffer.

Parameters stay stored in model order [L, ...] (checkpoints and converters never see the pipeline), sharded over
`pipeline` in contiguous blocks. With V = 1 a block is exactly one stage's layers and nothing moves; with V > 1
`to_stages` costs one collective permute of each device's layer parameters per step (and of the gradients back).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec
from jaxtyping import Array, Float, Int

from nemotron_jax.config import ModelConfig, ParallelConfig
from nemotron_jax.model.transformer import block_fn, logical_axes
from nemotron_jax.parallel.axes import ACT_EMBED, BATCH, LENGTH, PIPELINE, STAGE, shard

Params = Any


def bubble_fraction(stages: int, virtual_stages: int, microbatches: int) -> float:
    """Idle share of each stage's iterations: (P − 1) / (V·M + P − 1)."""
    return (stages - 1) / (virtual_stages * microbatches + stages - 1)


@functools.lru_cache(maxsize=None)
def _layer_logical_axes(cfg: ModelConfig) -> Any:
    return logical_axes(cfg)["layers"]


def to_stages(layer_params: Params, cfg: ModelConfig, stages: int, virtual_stages: int) -> Params:
    """Stacked [L, ...] layer params -> [P, V, Lc, ...] in circular order (stage s, repeat r: chunk r·P + s)."""
    lc = cfg.num_layers // (stages * virtual_stages)

    def one(a: Array, spec: PartitionSpec) -> Array:
        a = a.reshape(virtual_stages, stages, lc, *a.shape[1:]).swapaxes(0, 1)  # [P, V, Lc, ...]
        return shard(a, (STAGE, None, None, *tuple(spec)[1:]))

    return jax.tree.map(one, layer_params, _layer_logical_axes(cfg))


def _split_microbatches(x: Array, m: int) -> Array:
    # Row j goes to microbatch j mod M, so each data shard keeps its own rows (no cross-replica traffic).
    return x.reshape(x.shape[0] // m, m, *x.shape[1:]).swapaxes(0, 1)


def _merge_microbatches(x: Array) -> Array:
    return x.swapaxes(0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _chunk_fn(cfg: ModelConfig) -> Callable:
    """One stage's work for one iteration: pick repeat r's layers and run them; rematerialised as a whole."""
    run_block = block_fn(cfg)

    def chunk(stage_params: Params, r: Int[Array, ""], x: Array, positions: Array,
              segment_ids: Optional[Array]) -> Array:
        layers = jax.tree.map(lambda a: a[r], stage_params)  # [Lc, ...]

        def body(h, p):
            return run_block(p, h, positions, segment_ids), None

        return jax.lax.scan(body, x, layers)[0]

    return jax.checkpoint(chunk, prevent_cse=False)


def pipelined_layers(cfg: ModelConfig, pcfg: ParallelConfig) -> Callable:
    """A `layers_fn(layer_params, x, positions, segment_ids) -> x` that runs the stack as an interleaved pipeline."""
    p, v, m = pcfg.pipeline, pcfg.virtual_stages, pcfg.microbatches
    n_iter = v * m + p - 1
    chunk = jax.vmap(_chunk_fn(cfg), in_axes=(0, 0, 0, 0, 0), spmd_axis_name=PIPELINE)
    act = (BATCH, LENGTH, ACT_EMBED)

    def layers_fn(layer_params: Params, x: Float[Array, "B T D"], positions: Int[Array, "B T"],
                  segment_ids: Optional[Int[Array, "B T"]]) -> Float[Array, "B T D"]:
        staged = to_stages(layer_params, cfg, p, v)
        buffer = shard(_split_microbatches(x, m), (None, *act))  # [M, b, T, D]
        pos_mb = _split_microbatches(positions, m)
        seg_mb = None if segment_ids is None else _split_microbatches(segment_ids, m)
        stage_ids = jnp.arange(p)
        state = shard(jnp.zeros((p, *buffer.shape[1:]), buffer.dtype), (STAGE, *act))

        def iteration(carry, i):
            state, buffer = carry
            w = i - stage_ids
            mb, rep = jnp.mod(w, m), jnp.clip(w // m, 0, v - 1)
            state = jnp.where((stage_ids == 0)[:, None, None, None], buffer[jnp.mod(i, m)][None], state)
            seg = None if seg_mb is None else seg_mb[mb]
            out = shard(chunk(staged, rep, state, pos_mb[mb], seg), (STAGE, *act))
            w_last = w[p - 1]
            done = (w_last >= 0) & (w_last < v * m)
            slot = jnp.mod(w_last, m)
            buffer = buffer.at[slot].set(jnp.where(done, out[p - 1], buffer[slot]))
            return (jnp.roll(out, 1, axis=0), buffer), None

        (_, buffer), _ = jax.lax.scan(iteration, (state, buffer), jnp.arange(n_iter))
        return shard(_merge_microbatches(buffer), act)

    return layers_fn
