"""Logical axis names: the only vocabulary model code uses for sharding.

Model code annotates parameters and activations with these names; the ordered RULES table that maps them onto the
mesh axes (`data`, `fsdp`, `pipeline`, `tensor`) lives here too, so it is the one place that knows the mesh.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import PartitionSpec

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


# ------------------------------------------------------------------------------------------------------------
# The one sharding table
# ------------------------------------------------------------------------------------------------------------

# Mesh axes, outermost first: tensor innermost so tensor-parallel collectives stay inside a node.
DATA, FSDP, PIPELINE, TENSOR = "data", "fsdp", "pipeline", "tensor"
MESH_AXES = (DATA, FSDP, PIPELINE, TENSOR)

# Ordered; for each array dimension the first rule whose mesh axes are still free in that array wins.
# Megatron's mapping: column-parallel QKV/up (heads, kv_heads, mlp over tensor), row-parallel out/down (the same
# names on their input side), vocab-parallel embedding and output; FSDP shards the embed dimension of weights only.
RULES: tuple[tuple[str, Any], ...] = (
    (BATCH, (DATA, FSDP)),
    (VOCAB, TENSOR),
    (HEADS, TENSOR),
    (KV_HEADS, TENSOR),
    (MLP, TENSOR),
    (EMBED, FSDP),
    (STAGE, PIPELINE),
    (LAYERS, PIPELINE),
    (HEAD_DIM, None),
    (NORM, None),
    (REWARD_ATTRS, None),
    (LENGTH, TENSOR),  # sequence parallelism: dropped from the table when ParallelConfig.sequence_parallel is off
    (ATTN_LENGTH, None),
    (ACT_EMBED, None),
    (ACT_HEADS, TENSOR),
    (ACT_KV_HEADS, TENSOR),
    (ACT_MLP, TENSOR),
    (ACT_VOCAB, TENSOR),
    (CACHE_LENGTH, None),
)


def rules_for(sequence_parallel: bool) -> tuple[tuple[str, Any], ...]:
    """RULES for one run: the sequence-parallel entry only when it is switched on."""
    return tuple(r for r in RULES if sequence_parallel or r[0] != LENGTH)


def mesh_spec(logical: Optional[Sequence[Optional[str]]], rules: Sequence[tuple[str, Any]]) -> PartitionSpec:
    """Logical names of one array -> a PartitionSpec over mesh axes (unmatched names stay unsharded)."""
    if logical is None:
        return PartitionSpec()
    return nn.logical_to_mesh_axes(tuple(logical), tuple(rules))


def mesh_specs(logical_tree: Any, rules: Sequence[tuple[str, Any]]) -> Any:
    """A pytree of logical PartitionSpecs -> the same tree of mesh PartitionSpecs."""
    return jax.tree.map(lambda s: mesh_spec(s, rules), logical_tree,
                        is_leaf=lambda x: isinstance(x, PartitionSpec) or x is None)


def unresolved_axes(logical_tree: Any, rules: Sequence[tuple[str, Any]] = RULES) -> set[str]:
    """Logical names used by some parameter that RULES does not mention at all (should be empty)."""
    known = {name for name, _ in rules}
    used = {n for s in jax.tree.leaves(logical_tree, is_leaf=lambda x: isinstance(x, PartitionSpec))
            for n in s if n is not None}
    return used - known


def shards_of(spec: PartitionSpec, axis_sizes: dict[str, int]) -> int:
    """How many distinct pieces an array with this mesh spec is cut into."""
    count = 1
    for entry in spec:
        for ax in (entry if isinstance(entry, tuple) else (entry,)):
            count *= axis_sizes.get(ax, 1) if ax is not None else 1
    return count


def unsharded_fraction(shapes: Any, specs: Any, axis_sizes: dict[str, int]) -> float:
    """Share of parameters (by count) stored whole on every device under this layout."""
    leaves = jax.tree.leaves(shapes)
    spec_leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
    total = sum(int(np.prod(x.shape)) for x in leaves)
    whole = sum(int(np.prod(x.shape)) for x, s in zip(leaves, spec_leaves) if shards_of(s, axis_sizes) == 1)
    return whole / max(total, 1)
