"""The device mesh (data, fsdp, pipeline, tensor) built from a ParallelConfig, and the checks that run first.

Every check here runs before anything is traced or compiled and raises ConfigError with a fix-it message.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
from jax.sharding import AbstractMesh, AxisType, Mesh

from nemotron_jax.config import ConfigError, ModelConfig, ParallelConfig
from nemotron_jax.parallel.axes import DATA, FSDP, MESH_AXES, PIPELINE, TENSOR


def axis_sizes(pcfg: ParallelConfig, num_devices: int) -> dict[str, int]:
    """Mesh axis sizes with the one -1 inferred; the product must equal the device count."""
    sizes = {DATA: pcfg.data, FSDP: pcfg.fsdp, PIPELINE: pcfg.pipeline, TENSOR: pcfg.tensor}
    known = math.prod(v for v in sizes.values() if v != -1)
    free = [k for k, v in sizes.items() if v == -1]
    if free:
        if num_devices % known:
            raise ConfigError(f"cannot infer {free[0]}=-1: {num_devices} devices are not divisible by the product "
                              f"{known} of the other mesh sizes {sizes}; change the sizes so their product divides "
                              f"{num_devices}.")
        sizes[free[0]] = num_devices // known
    elif known != num_devices:
        raise ConfigError(f"mesh {sizes} needs {known} devices but {num_devices} are available; make the product "
                          f"of data*fsdp*pipeline*tensor equal {num_devices}, or set one of them to -1 to infer it.")
    return sizes


def layout_devices(parallel: ParallelConfig, available: int) -> int:
    """Devices the layout uses, with a -1 axis taking whatever the others leave."""
    sizes = [parallel.data, parallel.fsdp, parallel.pipeline, parallel.tensor]
    return available if -1 in sizes else math.prod(sizes)


def make_mesh(pcfg: ParallelConfig, devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A concrete mesh over `devices` (default: every device of every process), all axes Auto."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = axis_sizes(pcfg, len(devices))
    shape = tuple(sizes[a] for a in MESH_AXES)
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)


def abstract_mesh(pcfg: ParallelConfig, num_devices: int) -> AbstractMesh:
    """A device-free mesh of the same shape (for planning with eval_shape)."""
    sizes = axis_sizes(pcfg, num_devices)
    return AbstractMesh(tuple(sizes[a] for a in MESH_AXES), MESH_AXES,
                        axis_types=(AxisType.Auto,) * len(MESH_AXES))


def _divides(errors: list[str], what: str, value: int, by: int, by_name: str, fix: str) -> None:
    if by > 1 and value % by:
        errors.append(f"{what}={value} is not divisible by {by_name}={by}; {fix}")


def validate(cfg: ModelConfig, pcfg: ParallelConfig, *, num_devices: int, batch: Optional[int] = None,
             seq_len: Optional[int] = None) -> dict[str, int]:
    """Check a model/layout/batch combination before compiling; returns the mesh sizes or raises ConfigError.

    `batch` is the rows of one accumulation microbatch (what one train-step scan iteration sees).
    """
    sizes = axis_sizes(pcfg, num_devices)
    tp, pp, v, m = sizes[TENSOR], sizes[PIPELINE], pcfg.virtual_stages, pcfg.microbatches
    errs: list[str] = []
    _divides(errs, "num_layers", cfg.num_layers, pp * v, "pipeline*virtual_stages",
             "pick pipeline and virtual_stages whose product divides the layer count.")
    for field in ("num_heads", "num_kv_heads", "ffn_dim", "vocab_size"):
        _divides(errs, field, getattr(cfg, field), tp, "tensor",
                 "tensor parallelism splits this dimension; choose a tensor size that divides it"
                 + (" (Megatron would replicate KV heads; here use tensor <= num_kv_heads)."
                    if field == "num_kv_heads" else "."))
    _divides(errs, "d_model", cfg.d_model, sizes[FSDP], "fsdp", "FSDP splits weights along d_model; pick an fsdp "
             "size that divides it.")
    if m > 1 and pp == 1:
        errs.append(f"microbatches={m} only applies to pipeline parallelism (pipeline=1 here); use gradient "
                    "accumulation (the batch's leading axis) instead, or set microbatches=1.")
    if v > 1 and m < pp:
        errs.append(f"the interleaved schedule needs microbatches >= pipeline (got {m} < {pp}) so each chunk's output "
                    f"is back at stage 0 before its next repeat; raise microbatches to at least {pp}.")
    if batch is not None:
        _divides(errs, "batch (rows per accumulation step)", batch, sizes[DATA] * sizes[FSDP] * m,
                 "data*fsdp*microbatches", "every data replica needs whole pipeline microbatches; change the "
                 "global batch or the accumulation steps.")
    if seq_len is not None and pcfg.sequence_parallel:
        _divides(errs, "seq_len", seq_len, tp, "tensor", "sequence parallelism splits the sequence over the tensor "
                 "axis; pad the sequence length to a multiple of tensor.")
    if errs:
        raise ConfigError("invalid parallel layout:\n  - " + "\n  - ".join(errs))
    return sizes
