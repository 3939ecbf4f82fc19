"""Compile time of the sharded init and train step on 8 fake CPU devices, per layout, plus the 340B/15B plans.

    python benchmarks/compile_sharded.py                 # all layouts, toy dims (8 layers, D 32, 8/4 heads)
    python benchmarks/compile_sharded.py --layouts data8,pipe4_virtual2_mb4 --plans-only

No persistent compilation cache is used, so the figures are cold compiles. Step time is the median of a few
steps after compiling (toy dims: it measures overheads and collectives, not FLOPs).
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from nemotron_jax import config as C  # noqa: E402
from nemotron_jax.losses.common import masked_nll  # noqa: E402
from nemotron_jax.parallel.plan import plan  # noqa: E402
from nemotron_jax.parallel.training import build_sharded_training, make_forward  # noqa: E402
from nemotron_jax.train.optim import make_optimizer  # noqa: E402

CFG = C.toy_tiny(num_layers=8, num_heads=8, num_kv_heads=4, head_dim=8, ffn_dim=64, vocab_size=128)
LAYOUTS = {
    "data8": C.ParallelConfig(data=8),
    "fsdp8": C.ParallelConfig(data=1, fsdp=8),
    "tensor4_sp": C.ParallelConfig(data=2, tensor=4, sequence_parallel=True),
    "data2_tensor2_pipe2": C.ParallelConfig(data=2, tensor=2, pipeline=2, microbatches=2),
    "pipe4_virtual2_mb4": C.ParallelConfig(data=2, pipeline=4, virtual_stages=2, microbatches=4),
    "pipe2_fsdp2_tensor2": C.ParallelConfig(data=1, fsdp=2, tensor=2, pipeline=2, virtual_stages=2,
                                            microbatches=2),
}
PLANS = {
    "340B paper: TP8 x PP12 (V8, M12) x DP64, SP, dist. opt, batch 2304 (accum 3)": (
        C.nemotron4_340b(), C.ParallelConfig(data=64, tensor=8, pipeline=12, virtual_stages=8, microbatches=12,
                                             sequence_parallel=True), 6144, 2304, 12, 8.0),
    "340B, TP8 x PP12 (V8, M36) x DP64, batch 2304 (no accum)": (
        C.nemotron4_340b(), C.ParallelConfig(data=64, tensor=8, pipeline=12, virtual_stages=8, microbatches=36,
                                             sequence_parallel=True), 6144, 2304, 36, 8.0),
    "340B ramp start: TP8 x PP12 (V8, M12) x DP16, batch 768": (
        C.nemotron4_340b(), C.ParallelConfig(data=16, tensor=8, pipeline=12, virtual_stages=8, microbatches=12,
                                             sequence_parallel=True), 1536, 768, 12, 10.3),
    "15B: TP8 x DP8 (64 GPUs), SP, batch 256 (micro 4)": (
        C.nemotron4_15b(), C.ParallelConfig(data=8, tensor=8, sequence_parallel=True), 64, 256, 4, None),
    "15B: FSDP8 (one 8-GPU node), batch 64 (micro 1)": (
        C.nemotron4_15b(), C.ParallelConfig(data=1, fsdp=8), 8, 64, 1, None),
}


def loss_for(pcfg):
    fwd = make_forward(CFG, pcfg)

    def loss_fn(params, b):
        nll, count = masked_nll(fwd(params, b["inputs"]), b["targets"], b["loss_mask"])
        return nll, {"count": count}

    return loss_fn


def bench_layout(name: str, pcfg: C.ParallelConfig, steps: int) -> str:
    rows, length = 8, 64
    rng = np.random.default_rng(0)
    toks = rng.integers(0, CFG.vocab_size, (1, rows, length + 1)).astype(np.int32)
    batch = {"inputs": toks[..., :-1], "targets": toks[..., 1:], "loss_mask": np.ones((1, rows, length), np.float32)}
    run = build_sharded_training(CFG, pcfg, make_optimizer(C.OptimConfig(), 1e-3), loss_for(pcfg), batch=rows,
                                 seq_len=length)
    batch = run.put_batch(batch)
    with run.activate():
        t0 = time.perf_counter()
        init = run.init_jit.lower(jax.random.key(0)).compile()
        t1 = time.perf_counter()
        state = init(jax.random.key(0))
        t2 = time.perf_counter()
        step = run.step_jit.lower(state, batch).compile()
        t3 = time.perf_counter()
    times = []
    for _ in range(steps):
        s0 = time.perf_counter()
        state, m = step(state, batch)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - s0)
    return (f"| {name} | {t1 - t0:.1f} s | {t3 - t2:.1f} s | {1e3 * float(np.median(times)):.1f} ms | "
            f"{float(m['loss']):.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--plans-only", action="store_true")
    args = ap.parse_args()
    for title, (cfg, pcfg, devices, batch, micro, step_time) in PLANS.items():
        p = plan(cfg, pcfg, num_devices=devices, global_batch=batch, seq_len=4096, micro_batch=micro,
                 step_time_s=step_time)
        print(f"\n### {title}\n```\n{p.table()}\n```")
    if args.plans_only:
        return
    print("\n| layout (8 fake CPU devices) | init compile | step compile | step | loss |\n|---|---|---|---|---|")
    for name in args.layouts.split(","):
        print(bench_layout(name, LAYOUTS[name], args.steps), flush=True)


if __name__ == "__main__":
    main()
