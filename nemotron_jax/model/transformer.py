"""The Nemotron-4 decoder: embedding, a stack of pre-norm blocks, final LayerNorm1p, untied output matrix.

    x = embed(tokens)
    for each layer:  x = x + Attn(LN1p(x));  x = x + MLP(LN1p(x))
    logits = LN1p(x) @ W_out            # fp32 logits

Layers are stacked (`nn.scan`, leading `layers` axis on every block parameter) and each block may be wrapped in
`nn.remat` with a named policy. `scan_layers=False` runs the same stacked parameters in a Python loop.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from nemotron_jax.config import ModelConfig
from nemotron_jax.model.attention import Attention
from nemotron_jax.model.initializers import weight_init
from nemotron_jax.model.mlp import SquaredReLUMLP
from nemotron_jax.model.norms import LayerNorm1p
from nemotron_jax.model.remat import REMAT_POLICIES
from nemotron_jax.parallel.axes import (ACT_EMBED, ACT_VOCAB, BATCH, EMBED, LAYERS, LENGTH, VOCAB, shard)

Params = dict[str, Any]


class Embed(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, tokens: Int[Array, "B T"]) -> Float[Array, "B T D"]:
        cfg = self.cfg
        table = self.param("embedding", nn.with_logical_partitioning(weight_init(cfg), (VOCAB, EMBED)),
                           (cfg.vocab_size, cfg.d_model))
        x = jnp.take(table, tokens, axis=0).astype(jnp.dtype(cfg.dtype))
        return shard(x, (BATCH, LENGTH, ACT_EMBED))


class LMHead(nn.Module):
    """The untied output matrix [D, V]; logits come out in fp32 whatever the compute dtype."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: Float[Array, "B T D"]) -> Float[Array, "B T V"]:
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        w = self.param("kernel", nn.with_logical_partitioning(weight_init(cfg), (EMBED, VOCAB)),
                       (cfg.d_model, cfg.vocab_size))
        logits = jnp.einsum("BTD,DV->BTV", x.astype(dt), w.astype(dt), preferred_element_type=jnp.float32)
        return shard(logits, (BATCH, LENGTH, ACT_VOCAB))


class Block(nn.Module):
    """One pre-norm decoder block. Signature fits nn.scan: (carry, *xs) -> (carry, per-layer output)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: Float[Array, "B T D"], positions: Int[Array, "B T"],
                 segment_ids: Optional[Int[Array, "B T"]], cache: Optional[dict] = None,
                 cache_ctx: Optional[dict] = None) -> tuple[Float[Array, "B T D"], Optional[dict]]:
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        h = LayerNorm1p(cfg.norm_eps, dt, name="attn_norm")(x)
        a, cache = Attention(cfg, name="attn")(h, positions, segment_ids, cache, cache_ctx)
        x = shard(x + a.astype(x.dtype), (BATCH, LENGTH, ACT_EMBED))
        h = LayerNorm1p(cfg.norm_eps, dt, name="mlp_norm")(x)
        x = x + SquaredReLUMLP(cfg, name="mlp")(h).astype(x.dtype)
        return shard(x, (BATCH, LENGTH, ACT_EMBED)), cache


def _remat(block_cls: type, cfg: ModelConfig, prevent_cse: bool) -> type:
    policy = REMAT_POLICIES[cfg.remat]
    if cfg.remat == "none":
        return block_cls
    return nn.remat(block_cls, policy=policy, prevent_cse=prevent_cse)


class Transformer(nn.Module):
    cfg: ModelConfig

    def setup(self) -> None:
        cfg = self.cfg
        self.embed = Embed(cfg)
        stack = nn.scan(_remat(Block, cfg, prevent_cse=False), variable_axes={"params": 0},
                        split_rngs={"params": True}, in_axes=(nn.broadcast, nn.broadcast),
                        length=cfg.num_layers, metadata_params={nn.PARTITION_NAME: LAYERS})
        self.layers = stack(cfg)
        self.final_norm = LayerNorm1p(cfg.norm_eps, jnp.dtype(cfg.dtype))
        self.lm_head = LMHead(cfg)

    def __call__(self, tokens: Int[Array, "B T"], positions: Int[Array, "B T"],
                 segment_ids: Optional[Int[Array, "B T"]] = None) -> Float[Array, "B T V"]:
        return self.lm_head(self.hidden(tokens, positions, segment_ids))

    def hidden(self, tokens: Int[Array, "B T"], positions: Int[Array, "B T"],
               segment_ids: Optional[Int[Array, "B T"]] = None) -> Float[Array, "B T D"]:
        """Final-normed hidden states [B, T, D] (what the LM head and the reward head read)."""
        x, _ = self.layers(self.embed(tokens), positions, segment_ids)
        return self.final_norm(x)


# ------------------------------------------------------------------------------------------------------------
# The functional surface
# ------------------------------------------------------------------------------------------------------------


def _dummy_inputs(cfg: ModelConfig) -> tuple[Array, Array]:
    tokens = jnp.zeros((1, 8), jnp.int32)
    return tokens, jnp.broadcast_to(jnp.arange(8, dtype=jnp.int32), (1, 8))


def init_boxed(cfg: ModelConfig, rng: jax.Array) -> Params:
    """Parameters wrapped in nn.LogicallyPartitioned boxes (carry their logical axis names)."""
    tokens, positions = _dummy_inputs(cfg)
    return Transformer(cfg).init(rng, tokens, positions)["params"]


def init_params(cfg: ModelConfig, rng: jax.Array) -> Params:
    """Fresh fp32 parameters as a plain pytree: embed, layers (stacked [L, ...]), final_norm, lm_head."""
    return nn.unbox(init_boxed(cfg, rng))


def logical_axes(cfg: ModelConfig) -> Params:
    """A pytree like the params whose leaves are PartitionSpecs of logical axis names (no allocation)."""
    boxed = jax.eval_shape(lambda: init_boxed(cfg, jax.random.key(0)))
    return nn.get_partition_spec(boxed)


def param_shapes(cfg: ModelConfig) -> Params:
    """jax.ShapeDtypeStruct for every parameter, from eval_shape of the real init."""
    return jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Embedding (input table + untied output matrix), non-embedding and total counts, without allocating."""
    shapes = param_shapes(cfg)
    size = lambda tree: sum(int(x.size) for x in jax.tree.leaves(tree))
    embedding = size(shapes["embed"]) + size(shapes["lm_head"])
    total = size(shapes)
    return {"embedding": embedding, "non_embedding": total - embedding, "total": total}


def default_positions(tokens: Int[Array, "B T"]) -> Int[Array, "B T"]:
    return jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)


def layer_params(params: Params, i: int) -> Params:
    return jax.tree.map(lambda a: a[i], params["layers"])


def block_fn(cfg: ModelConfig) -> Callable:
    """(layer_params, x, positions, segment_ids) -> x for one block, rematerialised per the config's policy.

    The unrolled loop and the pipeline both run blocks through this one function.
    """

    def run(p: Params, x: Array, positions: Array, segment_ids: Optional[Array]) -> Array:
        return Block(cfg).apply({"params": p}, x, positions, segment_ids)[0]

    policy = REMAT_POLICIES[cfg.remat]
    return run if cfg.remat == "none" else jax.checkpoint(run, policy=policy)


def _loop_hidden(params: Params, tokens: Array, cfg: ModelConfig, positions: Array,
                 segment_ids: Optional[Array]) -> Array:
    x = Embed(cfg).apply({"params": params["embed"]}, tokens)
    run = block_fn(cfg)
    for i in range(cfg.num_layers):
        x = run(layer_params(params, i), x, positions, segment_ids)
    return LayerNorm1p(cfg.norm_eps, jnp.dtype(cfg.dtype)).apply({"params": params["final_norm"]}, x)


def forward_hidden(params: Params, tokens: Int[Array, "B T"], cfg: ModelConfig, *,
                   positions: Optional[Int[Array, "B T"]] = None,
                   segment_ids: Optional[Int[Array, "B T"]] = None,
                   layers_fn: Optional[Callable] = None) -> Float[Array, "B T D"]:
    """Final-normed hidden states; packed rows pass per-document positions and segment ids.

    `layers_fn(layer_params, x, positions, segment_ids) -> x` replaces the layer stack (the pipeline uses it).
    """
    positions = default_positions(tokens) if positions is None else positions
    if layers_fn is not None:
        x = layers_fn(params["layers"], Embed(cfg).apply({"params": params["embed"]}, tokens), positions,
                      segment_ids)
        return LayerNorm1p(cfg.norm_eps, jnp.dtype(cfg.dtype)).apply({"params": params["final_norm"]}, x)
    if not cfg.scan_layers:
        return _loop_hidden(params, tokens, cfg, positions, segment_ids)
    return Transformer(cfg).apply({"params": params}, tokens, positions, segment_ids, method="hidden")


def forward(params: Params, tokens: Int[Array, "B T"], cfg: ModelConfig, *,
            positions: Optional[Int[Array, "B T"]] = None,
            segment_ids: Optional[Int[Array, "B T"]] = None,
            layers_fn: Optional[Callable] = None) -> Float[Array, "B T V"]:
    """fp32 logits [B, T, V] for next-token prediction."""
    x = forward_hidden(params, tokens, cfg, positions=positions, segment_ids=segment_ids, layers_fn=layers_fn)
    return LMHead(cfg).apply({"params": params["lm_head"]}, x)


# ------------------------------------------------------------------------------------------------------------
# KV cache (used by the sampler)
# ------------------------------------------------------------------------------------------------------------


def unstack_layers(params: Params) -> Params:
    """The params with `layers` as a tuple of per-layer trees: the decode layout.

    Slicing a stacked weight inside a jitted step makes XLA copy it (measured on CPU: the bench-cpu decode step
    spent 3/4 of its time copying weight slices), so decoding takes its layers already split.
    """
    if isinstance(params["layers"], (tuple, list)):
        return params
    n = jax.tree.leaves(params["layers"])[0].shape[0]
    return {**params, "layers": tuple(layer_params(params, i) for i in range(n))}


def fuse_qkv(params: Params) -> Params:
    """Unstacked params (`unstack_layers`) with each layer's wq, wk, wv as one `wqkv` [D, N + 2K, H], which
    Attention projects with a single matmul and splits. A serving layout for unsharded decoding: bench-cpu greedy
    decode ran 4-5% faster at batch 8 and ~9% at batch 1 (three small matmuls, each paying its own start-up,
    become one). Not for tensor-parallel placement: the fused axis mixes query and kv heads."""

    def fuse(layer: Params) -> Params:
        attn = dict(layer["attn"])
        if "wqkv" not in attn:
            attn["wqkv"] = jnp.concatenate([attn.pop("wq"), attn.pop("wk"), attn.pop("wv")], axis=1)
        return {**layer, "attn": attn}

    return {**params, "layers": tuple(fuse(layer) for layer in unstack_layers(params)["layers"])}


def init_cache(cfg: ModelConfig, batch: int, length: int, dtype: Optional[str] = None) -> dict:
    """An empty GQA-sized cache: per layer keys [B, K, H, S] (keys-last, as decode attention reads them) and
    values [B, K, S, H], and the slot positions [B, S] (-1 = empty) that every layer shares."""
    dt = jnp.dtype(dtype or cfg.dtype)
    b, kv, h = batch, cfg.num_kv_heads, cfg.head_dim
    return {"layers": tuple({"k": jnp.zeros((b, kv, h, length), dt), "v": jnp.zeros((b, kv, length, h), dt)}
                            for _ in range(cfg.num_layers)),
            "slot_positions": jnp.full((batch, length), -1, jnp.int32)}


def forward_cached(params: Params, tokens: Int[Array, "B T"], cfg: ModelConfig, cache: dict, *,
                   positions: Int[Array, "B T"], write_index: Int[Array, "B"],
                   logits_index: Optional[Int[Array, "B"]] = None, fresh: bool = False
                   ) -> tuple[Float[Array, "B T V"], dict]:
    """Run T new tokens per row against the cache, writing their K/V at slot `write_index[b]` onwards.

    A token with position -1 (padding) is written as an empty slot, so nothing ever attends to it.
    With `logits_index`, only row b's logits at token logits_index[b] are computed ([B, 1, V]; a prefill needs
    just the last prompt token's, and the [B, T, V] output matmul would cost more than the whole trunk).
    The layers run as an unrolled loop over per-layer weights and per-layer cache buffers, so each buffer is
    updated in place (no scan restacking the cache); pass `unstack_layers(params)` to avoid slicing weights.
    `fresh=True` says the cache is empty and write_index is 0 (a prefill): attention then reads only the T new
    tokens, not all S slots, with whichever core the config picks (the cache itself is read with `xla` einsums).
    """

    def put(row_pos, new_pos, start):
        return jax.lax.dynamic_update_slice_in_dim(row_pos, new_pos, start, axis=0)

    slot_positions = jax.vmap(put)(cache["slot_positions"], positions.astype(jnp.int32), write_index)
    ctx = {"write_index": write_index, "slot_positions": slot_positions, "fresh": fresh}
    layers = unstack_layers(params)["layers"]
    x = Embed(cfg).apply({"params": params["embed"]}, tokens)
    pos = jnp.maximum(positions, 0)
    new_layers = []
    for p, layer_cache in zip(layers, cache["layers"], strict=True):
        x, layer_cache = Block(cfg).apply({"params": p}, x, pos, None, layer_cache, ctx)
        new_layers.append(layer_cache)
    x = LayerNorm1p(cfg.norm_eps, jnp.dtype(cfg.dtype)).apply({"params": params["final_norm"]}, x)
    if logits_index is not None:
        x = jnp.take_along_axis(x, logits_index[:, None, None], axis=1)
    logits = LMHead(cfg).apply({"params": params["lm_head"]}, x)
    return logits, {"layers": tuple(new_layers), "slot_positions": slot_positions}
