"""Launch planner: per-device memory, pipeline bubble, FLOPs and MFU for a model + layout, without devices.

Parameter/gradient/optimizer bytes come from the real parameter shapes (eval_shape) and the shardings RULES gives
on an abstract mesh of the layout's size. Activations are an analytic estimate for the remat policy:

    per token per layer (compute dtype c bytes; tp = tensor, sp = tp with sequence parallelism else 1)
      layer internals  = c·(6·D/sp + (2N + 3K)·H/tp + N·H/tp + 2·F/tp) + (4 + c)·N·T/tp   (xla attention scores)
      saved by policy  = none/save_all: internals | save_dots: input + matmul outputs | full: the input, c·D/sp
    no pipeline: tokens·(L·saved + internals)
    pipeline:    stage inputs (V·M + P − 1)·mb_tokens·c·D/sp + microbatch buffer 2·M·mb_tokens·c·D/sp
                 + mb_tokens·(Lc·saved + internals)
    + logits: tokens·(V/tp)·4 bytes·2 (fp32 logits and their gradient; the head runs on the whole microbatch)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import sys
from typing import Any, Optional, Sequence

import jax
import numpy as np

from nemotron_jax import config as C
from nemotron_jax.config import ConfigError, ModelConfig, ParallelConfig
from nemotron_jax.model.transformer import param_shapes
from nemotron_jax.parallel.axes import DATA, FSDP, PIPELINE, TENSOR, shards_of, unsharded_fraction
from nemotron_jax.parallel.mesh import abstract_mesh, validate
from nemotron_jax.parallel.pipeline import bubble_fraction
from nemotron_jax.parallel.training import add_data_axis, compute_cast_mask, param_specs
from nemotron_jax.train.flops import H100_BF16_PEAK, flops_per_token, mfu

GB = 1e9
ADAM_MOMENTS = 2  # fp32 mu and nu per parameter


@dataclasses.dataclass(frozen=True)
class Plan:
    """Per-device figures of one layout (bytes unless named otherwise)."""

    model: str
    layout: dict
    num_devices: int
    global_batch: int
    seq_len: int
    accum_steps: int
    params: float  # fp32 masters
    compute_copy: float  # the step's gathered, cast copy of the weights
    grads: float
    optimizer: float
    activations: float
    bubble: float
    flops_per_token: float
    unsharded_fraction: float
    device_memory: float
    step_time_s: Optional[float]
    mfu: Optional[float]

    @property
    def total(self) -> float:
        return self.params + self.compute_copy + self.grads + self.optimizer + self.activations

    @property
    def fits(self) -> bool:
        return self.total <= self.device_memory

    def table(self) -> str:
        """A two-column text table (what `nemotron-jax plan` prints)."""
        lay = " x ".join(f"{k}={v}" for k, v in self.layout.items())
        rows = [("model", self.model), ("layout", lay), ("devices", str(self.num_devices)),
                ("global batch x seq", f"{self.global_batch} x {self.seq_len} (accumulation steps {self.accum_steps})"),
                ("fp32 masters / device", f"{self.params / GB:.2f} GB"),
                ("compute copy / device", f"{self.compute_copy / GB:.2f} GB"),
                ("grads / device", f"{self.grads / GB:.2f} GB"),
                ("optimizer / device", f"{self.optimizer / GB:.2f} GB"),
                ("activations / device", f"{self.activations / GB:.2f} GB (estimate)"),
                ("total / device", f"{self.total / GB:.2f} GB of {self.device_memory / GB:.0f} GB: "
                                   + ("fits" if self.fits else "DOES NOT FIT")),
                ("unsharded params", f"{100 * self.unsharded_fraction:.2f}%"),
                ("pipeline bubble", f"{100 * self.bubble:.1f}%"),
                ("FLOPs / token", f"{self.flops_per_token:.4g}")]
        if self.mfu is not None:
            rows.append((f"MFU at {self.step_time_s:g} s/step", f"{100 * self.mfu:.1f}%"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _layer_internals(cfg: ModelConfig, c: int, tp: int, sp: int, seq_len: int) -> float:
    d, n, k, h, f = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.ffn_dim
    # plans are for GPU clusters: the einsum core keeps [N, T, T] scores, the fused cores do not
    scores = (4 + c) * n * seq_len / tp if cfg.attention_core("gpu") == "xla" else 0.0
    return c * (6 * d / sp + (2 * n + 3 * k) * h / tp + n * h / tp + 2 * f / tp) + scores


def _saved_per_layer(cfg: ModelConfig, c: int, tp: int, sp: int, seq_len: int) -> float:
    d, n, k, h, f = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.ffn_dim
    layer_input = c * d / sp
    if cfg.remat == "full":
        return layer_input
    if cfg.remat in ("save_dots", "save_dots_no_batch"):
        return layer_input + c * ((n + 2 * k) * h / tp + n * h / tp + 2 * d / sp + f / tp) + 4 * n * seq_len / tp
    return _layer_internals(cfg, c, tp, sp, seq_len)


def activation_bytes(cfg: ModelConfig, pcfg: ParallelConfig, sizes: dict[str, int], rows: int,
                     seq_len: int) -> float:
    """Peak activation bytes per device for `rows` sequences per data replica per accumulation step."""
    c = np.dtype(cfg.dtype).itemsize if cfg.dtype != "bfloat16" else 2
    tp = sizes[TENSOR]
    sp = tp if pcfg.sequence_parallel else 1
    internals = _layer_internals(cfg, c, tp, sp, seq_len)
    saved = _saved_per_layer(cfg, c, tp, sp, seq_len)
    tokens = rows * seq_len
    logits = tokens * (cfg.vocab_size / tp) * 4 * 2
    p = sizes[PIPELINE]
    if p == 1:
        return tokens * (cfg.num_layers * saved + internals) + logits
    v, m = pcfg.virtual_stages, pcfg.microbatches
    mb_tokens = tokens / m
    stream = c * cfg.d_model / sp
    lc = cfg.num_layers // (p * v)
    return (mb_tokens * stream * (v * m + p - 1 + 2 * m) + mb_tokens * (lc * saved + internals) + logits)


def state_bytes(cfg: ModelConfig, pcfg: ParallelConfig, sizes: dict[str, int], accum: int) -> dict[str, float]:
    """Per-device bytes of the train state and step buffers, from eval_shape and the shardings the step uses.

    masters (fp32) and Adam moments use the master layout (RULES + `data` with the distributed optimizer); the
    step's compute copy (matmul weights in the compute dtype) and each microbatch's gradients use the RULES
    layout; the fp32 gradient sum uses the master layout and is its own buffer when accumulating or when the two
    layouts differ.
    """
    shapes = param_shapes(cfg)
    compute = jax.tree.leaves(param_specs(cfg, pcfg), is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    cast = jax.tree.leaves(compute_cast_mask(shapes))
    c = 2 if cfg.dtype in ("bfloat16", "float16") else 4
    out = dict(params=0.0, compute_copy=0.0, grads=0.0, optimizer=0.0)
    for x, s, w in zip(jax.tree.leaves(shapes), compute, cast):
        n = float(np.prod(x.shape))
        master = add_data_axis(s, x.shape, sizes) if pcfg.shard_optimizer else s
        m_shards, c_shards = shards_of(master, sizes), shards_of(s, sizes)
        width = c if w else 4
        separate = master != s or width != 4
        out["params"] += 4 * n / m_shards
        out["compute_copy"] += width * n / c_shards if separate else 0.0
        out["grads"] += width * n / c_shards + (4 * n / m_shards if (accum > 1 or separate) else 0.0)
        out["optimizer"] += ADAM_MOMENTS * 4 * n / m_shards
    return out


def plan(cfg: ModelConfig, pcfg: ParallelConfig, *, num_devices: int, global_batch: int, seq_len: int,
         micro_batch: Optional[int] = None, step_time_s: Optional[float] = None, device_memory_gb: float = 80.0,
         peak_flops: float = H100_BF16_PEAK) -> Plan:
    """Per-device memory, bubble and FLOPs of a layout. `micro_batch`: rows per data replica per accumulation
    step (default: the whole per-replica batch, no accumulation)."""
    sizes = validate(cfg, pcfg, num_devices=num_devices, seq_len=seq_len)
    abstract_mesh(pcfg, num_devices)  # the layout must form a mesh
    replicas = sizes[DATA] * sizes[FSDP]
    if global_batch % replicas:
        raise ConfigError(f"global_batch={global_batch} is not divisible by data*fsdp={replicas}")
    per_replica = global_batch // replicas
    rows = per_replica if micro_batch is None else micro_batch
    if per_replica % rows:
        raise ConfigError(f"micro_batch={rows} does not divide the {per_replica} rows each data replica gets")
    validate(cfg, pcfg, num_devices=num_devices, batch=rows * replicas, seq_len=seq_len)
    accum = per_replica // rows
    state = state_bytes(cfg, pcfg, sizes, accum)
    frac = unsharded_fraction(param_shapes(cfg), param_specs(cfg, pcfg), sizes)
    acts = activation_bytes(cfg, pcfg, sizes, rows, seq_len)
    bubble = bubble_fraction(sizes[PIPELINE], pcfg.virtual_stages, pcfg.microbatches)
    util = None if step_time_s is None else mfu(cfg, seq_len=seq_len, global_batch=global_batch,
                                                 step_time_s=step_time_s, num_devices=num_devices,
                                                 peak_flops=peak_flops)
    return Plan(model=cfg.name, layout=sizes | {"virtual_stages": pcfg.virtual_stages,
                                                "microbatches": pcfg.microbatches},
                num_devices=num_devices, global_batch=global_batch, seq_len=seq_len, accum_steps=accum,
                params=state["params"], compute_copy=state["compute_copy"], grads=state["grads"],
                optimizer=state["optimizer"], activations=acts, bubble=bubble,
                flops_per_token=flops_per_token(cfg, seq_len), unsharded_fraction=frac,
                device_memory=device_memory_gb * GB, step_time_s=step_time_s, mfu=util)


# ------------------------------------------------------------------------------------------------------------
# The `nemotron-jax plan` command
# ------------------------------------------------------------------------------------------------------------


def _load_experiment(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("_plan_experiment", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import experiment file {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "CONFIG"):
        raise ConfigError(f"{path} defines no CONFIG (an Experiment)")
    return module.CONFIG


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nemotron-jax plan",
                                 description="Per-device memory, bubble, FLOPs and MFU of a layout; no devices used.")
    ap.add_argument("experiment", help="an experiment file (defines CONFIG) or a model preset name")
    ap.add_argument("--devices", type=int, required=False, help="device count (default: the layout's product)")
    for name in ("data", "fsdp", "pipeline", "tensor", "virtual-stages", "microbatches"):
        ap.add_argument(f"--{name}", type=int)
    ap.add_argument("--sequence-parallel", action="store_true", default=None)
    ap.add_argument("--no-shard-optimizer", action="store_true")
    ap.add_argument("--global-batch", type=int)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--micro-batch", type=int, help="rows per data replica per accumulation step")
    ap.add_argument("--step-time", type=float, help="seconds per step, for the implied MFU")
    ap.add_argument("--memory-gb", type=float, default=80.0)
    ap.add_argument("--peak-tflops", type=float, default=H100_BF16_PEAK / 1e12)
    return ap


def cli_main(argv: Optional[Sequence[str]] = None) -> int:
    """`nemotron-jax plan EXPERIMENT.py|PRESET [--tensor 8 --pipeline 12 ...]`: print the plan table."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.experiment.endswith(".py"):
            exp = _load_experiment(args.experiment)
            cfg, pcfg = exp.model, exp.parallel
            batch, seq, micro = exp.batch.global_batch, exp.batch.seq_len, exp.batch.micro_batch
        else:
            cfg, pcfg, batch, seq, micro = C.model_preset(args.experiment), ParallelConfig(), None, None, None
        over = {k: getattr(args, k.replace("-", "_")) for k in ("data", "fsdp", "pipeline", "tensor",
                                                                "virtual_stages", "microbatches")}
        pcfg = pcfg.replace(**{k: v for k, v in over.items() if v is not None})
        if args.sequence_parallel:
            pcfg = pcfg.replace(sequence_parallel=True)
        if args.no_shard_optimizer:
            pcfg = pcfg.replace(shard_optimizer=False)
        sizes = [pcfg.data, pcfg.fsdp, pcfg.pipeline, pcfg.tensor]
        devices = args.devices or (math.prod(sizes) if -1 not in sizes else None)
        if devices is None:
            raise ConfigError("a mesh size is -1 (inferred): pass --devices N")
        seq = args.seq_len or seq or cfg.max_seq_len
        batch = args.global_batch or batch
        if batch is None:
            raise ConfigError("pass --global-batch (sequences per step) with a preset name")
        micro = args.micro_batch or (micro if args.experiment.endswith(".py") else None)
        result = plan(cfg, pcfg, num_devices=devices, global_batch=batch, seq_len=seq, micro_batch=micro,
                      step_time_s=args.step_time, device_memory_gb=args.memory_gb,
                      peak_flops=args.peak_tflops * 1e12)
    except ConfigError as e:
        print(f"nemotron-jax plan: {e}", file=sys.stderr)
        return 2
    print(result.table())
    return 0 if result.fits else 1
