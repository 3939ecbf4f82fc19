"""Logical axis names: the only vocabulary model code uses for sharding.

Model code annotates parameters and activations with these names; the ordered RULES table that maps them onto the
mesh axes (`data`, `fsdp`, `pipeline`, `tensor`) lives here too, so it is the one place that knows the mesh.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

# Parameter axes.
VOCAB = "vocab"
EMBED = "embed"
HEADS = "heads"
KV_HEADS = "kv_heads"
HEAD_DIM = "head_dim"
MLP = "mlp"
NORM = "norm"  # LayerNorm scale/bias: tiny, replicated
LAYERS = "layers"  # the stacked-layer axis added by nn.scan
STAGE = "stage"  # pipeline stage axis of re-stacked layer params
REWARD_ATTRS = "reward_attrs"

# Activation axes (separate names so FSDP shards parameters only).
BATCH = "batch"
LENGTH = "length"  # sequence axis between blocks (sequence parallel shards it over tensor)
ATTN_LENGTH = "attn_length"  # sequence axis inside attention/MLP (never sharded)
ACT_EMBED = "act_embed"
ACT_HEADS = "act_heads"
ACT_KV_HEADS = "act_kv_heads"
ACT_MLP = "act_mlp"
ACT_VOCAB = "act_vocab"
CACHE_LENGTH = "cache_length"

PARAM_AXES = (VOCAB, EMBED, HEADS, KV_HEADS, HEAD_DIM, MLP, NORM, LAYERS, STAGE, REWARD_ATTRS)
ACTIVATION_AXES = (BATCH, LENGTH, ATTN_LENGTH, ACT_EMBED, ACT_HEADS, ACT_KV_HEADS, ACT_MLP, ACT_VOCAB,
                   CACHE_LENGTH)


def shard(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """Constrain an activation's sharding by logical names (a no-op outside a mesh with rules)."""
    return nn.with_logical_constraint(x, tuple(axes))
