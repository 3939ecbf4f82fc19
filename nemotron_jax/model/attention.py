"""Grouped-query attention with partial RoPE, causal + segment masks, and an optional KV cache.

Query head n reads KV head n // (N / K). Two cores compute the same function: `xla` (reference einsums, fp32
softmax, runs anywhere) and `fused`/`cudnn` (`jax.nn.dot_product_attention`, the GPU fast path). `auto` (the
default) picks cuDNN on a GPU where it applies, else `xla` (`ModelConfig.attention_core`).
"""

from __future__ import annotations

import functools
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from nemotron_jax.config import ModelConfig
from nemotron_jax.model.initializers import out_init, weight_init
from nemotron_jax.model.rope import apply_rope
from nemotron_jax.parallel.axes import (ACT_HEADS, ACT_KV_HEADS, ATTN_LENGTH, BATCH, EMBED, HEAD_DIM, HEADS,
                                        KV_HEADS, shard)

# Masked logits get the most negative finite fp32, not -inf: a fully masked row (padding) then stays finite.
NEG_INF = float(jnp.finfo(jnp.float32).min)


def training_mask(segment_ids: Optional[Int[Array, "B T"]], batch: int, length: int) -> Bool[Array, "B T S"]:
    """Causal by index, and no attention across documents of a packed row (segment ids must match)."""
    causal = jnp.tril(jnp.ones((length, length), dtype=bool))[None]
    if segment_ids is None:
        return jnp.broadcast_to(causal, (batch, length, length))
    same_doc = segment_ids[:, :, None] == segment_ids[:, None, :]
    return causal & same_doc


def cache_mask(positions: Int[Array, "B T"], slot_positions: Int[Array, "B S"]) -> Bool[Array, "B T S"]:
    """Decode mask: a query at position p sees every filled cache slot (position >= 0) at position <= p."""
    filled = slot_positions[:, None, :] >= 0
    return filled & (slot_positions[:, None, :] <= positions[:, :, None])


def xla_attention(q: Float[Array, "B N T H"], k: Float[Array, "B K S H"], v: Float[Array, "B K S H"],
                  mask: Bool[Array, "B T S"], *, keys_last: bool = False) -> Float[Array, "B N T H"]:
    """Reference GQA, heads-first: logits and softmax in fp32, KV heads broadcast over their query group.

    Heads-first operands make every contraction a plain batched matmul (no transposes around the dots): the
    train step measured 20% faster attention on CPU than with [B, T, N, H] operands. `keys_last`: k is [B, K, H, S],
    as the KV cache stores it (with [B, K, S, H] keys a decode step's scores contract the minor dimension of both
    operands: bench-cpu decode at batch 8 ran 8% slower, at batch 32 10%).
    """
    b, n, t, h = q.shape
    kv = k.shape[1]
    qg = q.reshape(b, kv, n // kv, t, h)  # [B, K, G, T, H]
    spec = "BKGTH,BKHS->BKGTS" if keys_last else "BKGTH,BKSH->BKGTS"
    logits = jnp.einsum(spec, qg, k, preferred_element_type=jnp.float32)
    logits = logits * (h ** -0.5)
    logits = jnp.where(mask[:, None, None, :, :], logits, NEG_INF)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = jnp.einsum("BKGTS,BKSH->BKGTH", probs, v)
    return out.reshape(b, n, t, h)


def fused_attention(q: Float[Array, "B N T H"], k: Float[Array, "B K S H"], v: Float[Array, "B K S H"],
                    mask: Optional[Bool[Array, "B T S"]], implementation: Optional[str]) -> Float[Array, "B N T H"]:
    """jax.nn.dot_product_attention; a plain causal mask is passed as is_causal so cuDNN can use its kernel."""
    q, k, v = (jnp.swapaxes(a, 1, 2) for a in (q, k, v))  # the API takes [B, T, N, H]
    if mask is None:
        out = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=implementation)
    else:
        out = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None], implementation=implementation)
    return jnp.swapaxes(out, 1, 2)


@functools.cache
def _compute_capability() -> Optional[str]:
    """The default device's CUDA compute capability ("9.0" on an H100/H200), None off NVIDIA GPUs."""
    return getattr(jax.devices()[0], "compute_capability", None)


def _project(x: Float[Array, "B T D"], w: Float[Array, "D N H"], plain: bool) -> Float[Array, "B N T H"]:
    """Heads-first projection. `plain` (inference: decode steps and prefills) runs it as [B*T, D] @ [D, N*H] and
    moves the heads in front of the result: the heads-first einsum made XLA CPU copy (transpose) the weight on
    every call (decode step 11.0 -> 8.2 ms when one-token steps went plain; prefill q projection 2.0 + 0.7 ms copy).
    Training keeps the einsum (its attention measured 20% faster with heads-first operands)."""
    b, t, d = x.shape
    if plain:
        y = (x.reshape(b * t, d) @ w.reshape(d, -1)).reshape(b, t, w.shape[1], w.shape[2])
        return y.reshape(b, w.shape[1], 1, w.shape[2]) if t == 1 else y.transpose(0, 2, 1, 3)
    return jnp.einsum("BTD,DNH->BNTH", x, w)


class Attention(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: Float[Array, "B T D"], positions: Int[Array, "B T"],
                 segment_ids: Optional[Int[Array, "B T"]], cache: Optional[dict] = None,
                 cache_ctx: Optional[dict] = None) -> tuple[Float[Array, "B T D"], Optional[dict]]:
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        d, n, kv, h = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        fused = self.has_variable("params", "wqkv")  # the serving layout (fuse_qkv): one projection, then split
        if not fused:  # declared before wo: init draws each parameter's key in declaration order
            wq = self.param("wq", nn.with_logical_partitioning(weight_init(cfg), (EMBED, HEADS, HEAD_DIM)), (d, n, h))
            wk = self.param("wk", nn.with_logical_partitioning(weight_init(cfg), (EMBED, KV_HEADS, HEAD_DIM)),
                            (d, kv, h))
            wv = self.param("wv", nn.with_logical_partitioning(weight_init(cfg), (EMBED, KV_HEADS, HEAD_DIM)),
                            (d, kv, h))
        wo = self.param("wo", nn.with_logical_partitioning(out_init(cfg), (HEADS, HEAD_DIM, EMBED)), (n, h, d))
        xd = x.astype(dt)
        plain = cache is not None or x.shape[1] == 1
        if fused:
            qkv = _project(xd, self.get_variable("params", "wqkv").astype(dt), plain)
            q, k, v = qkv[:, :n], qkv[:, n:n + kv], qkv[:, n + kv:]
        else:
            q, k, v = (_project(xd, w.astype(dt), plain) for w in (wq, wk, wv))
        q = shard(q, (BATCH, ACT_HEADS, ATTN_LENGTH, None))
        k = shard(k, (BATCH, ACT_KV_HEADS, ATTN_LENGTH, None))
        v = shard(v, (BATCH, ACT_KV_HEADS, ATTN_LENGTH, None))
        q = apply_rope(q, positions, cfg.rotary_dim, cfg.rope_base, heads_first=True)
        k = apply_rope(k, positions, cfg.rotary_dim, cfg.rope_base, heads_first=True)

        core = cfg.attention_core(jax.default_backend(), _compute_capability())
        if cache is None:
            # mask None: pure causal, which the fused kernel takes as is_causal
            mask = None if segment_ids is None and core != "xla" else training_mask(segment_ids, x.shape[0],
                                                                                    x.shape[1])
            out = _attend(core, q, k, v, mask)
        else:
            k_t, v_all, cache = write_cache(cache, k, v, cache_ctx["write_index"])
            if cache_ctx.get("fresh"):  # an empty cache written from slot 0 (a prefill): attend to the new tokens
                mask = cache_mask(positions, cache_ctx["slot_positions"][:, :x.shape[1]])
                k, v = (a.astype(cache["v"].dtype).astype(a.dtype) for a in (k, v))  # as the cache holds them
                out = _attend(core, q, k, v, mask)
            else:
                mask = cache_mask(positions, cache_ctx["slot_positions"])
                out = xla_attention(q, k_t, v_all, mask, keys_last=True)
        out = shard(out, (BATCH, ACT_HEADS, ATTN_LENGTH, None))
        b, t = x.shape[:2]
        if plain:  # [B*T, N*H] @ [N*H, D], as in _project
            out = out.reshape(b, n * h) if t == 1 else out.transpose(0, 2, 1, 3).reshape(b * t, n * h)
            return (out @ wo.astype(dt).reshape(n * h, d)).reshape(b, t, d), cache
        return jnp.einsum("BNTH,NHD->BTD", out, wo.astype(dt)), cache


def _attend(core: str, q: Array, k: Array, v: Array, mask: Optional[Array]) -> Array:
    if core == "xla":
        return xla_attention(q, k, v, mask)
    return fused_attention(q, k, v, mask, "cudnn" if core == "cudnn" else None)


def write_cache(cache: dict, k: Float[Array, "B K T H"], v: Float[Array, "B K T H"],
                write_index: Int[Array, "B"]) -> tuple[Array, Array, dict]:
    """Write this step's K/V into each row's cache (keys [B, K, H, S], values [B, K, S, H]) at its own slot offset
    (ragged rows decode in lock-step); returns the whole cache for attention, and the updated cache."""

    def put(axis):
        return jax.vmap(lambda buf, new, start: jax.lax.dynamic_update_slice_in_dim(buf, new.astype(buf.dtype),
                                                                                     start, axis=axis))

    ck = put(2)(cache["k"], jnp.swapaxes(k, 2, 3), write_index)
    cv = put(1)(cache["v"], v, write_index)
    return ck.astype(k.dtype), cv.astype(v.dtype), {"k": ck, "v": cv}
