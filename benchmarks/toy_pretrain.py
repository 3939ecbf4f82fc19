"""Toy pretraining throughput on this machine: tokens/s and MFU of the real loop (data pipeline included).

    python benchmarks/toy_pretrain.py [--steps 30] [--peak-flops F]

Runs experiments/toy/pretrain.py (toy-small on the toy world) for `--steps` steps in a temporary run folder at the
final batch (ramp off), skips the compile step, and prints median step time, tokens/s and MFU. MFU's denominator
is `--peak-flops` or, by default, the measured fp32 matmul rate of this machine (the best a dense op gets here).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from nemotron_jax.train import flops
from nemotron_jax.train.cli import apply_overrides, load_experiment_module
from nemotron_jax.train.loop import run

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "toy" / "pretrain.py"


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 matmul FLOP/s (best of `repeats`)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def data_only(exp, batches: int) -> float:
    """Tokens/s of the data pipeline alone (tokenize, pack, blend, batch)."""
    from nemotron_jax.train.tasks import lm_data_iterator

    it = lm_data_iterator(exp, rows=exp.batch.global_batch)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * exp.batch.global_batch * exp.batch.seq_len / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--peak-flops", type=float, default=None)
    args = ap.parse_args()
    module = load_experiment_module(EXPERIMENT)
    with tempfile.TemporaryDirectory() as tmp:
        exp = apply_overrides(module.CONFIG, [f"run_dir={tmp}", "batch.ramp=None", "logging.progress=false",
                                              "logging.tensorboard=false", f"checkpoint.save_every={10**6}"])
        module.prepare(exp)  # the tokenizer, once (it lives in the toy run folder)
        peak = args.peak_flops or matmul_peak()
        result = run(exp, stop_after=args.steps)
        data_tps = data_only(exp, 50)
    times = [r["step_time_s"] for r in result.records[2:]]  # past the compile
    step_s = statistics.median(times)
    tokens = exp.batch.global_batch * exp.batch.seq_len
    mfu = flops.mfu(exp.model, seq_len=exp.batch.seq_len, global_batch=exp.batch.global_batch, step_time_s=step_s,
                    num_devices=1, peak_flops=peak)
    print(f"toy pretrain ({exp.model.name}, {jax.devices()[0].platform}): batch {exp.batch.global_batch} x "
          f"{exp.batch.seq_len} tokens, {len(times)} timed steps")
    print(f"  step {step_s * 1e3:.0f} ms (median)   {tokens / step_s:,.0f} tokens/s   "
          f"MFU {100 * mfu:.1f}% of {peak / 1e9:.0f} GFLOP/s (measured fp32 matmul peak)")
    print(f"  data pipeline alone: {data_tps:,.0f} tokens/s ({data_tps / (tokens / step_s):.0f}x what training uses)")
    print(f"  loss {result.records[0]['loss']:.3f} -> {result.records[-1]['loss']:.3f} over {result.step} steps")


if __name__ == "__main__":
    main()
