"""Reward-model scoring throughput through `model.heads.score` (fixed-size jitted batches, right padding).

    python benchmarks/reward_score.py [--preset toy-small] [--n 256] [--batch 16] [--len 200]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from nemotron_jax import config as C
from nemotron_jax.model import heads


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="toy-small")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--len", type=int, default=200, help="mean sequence length (lengths vary +-25%)")
    args = ap.parse_args()
    cfg = C.model_preset(args.preset, max_seq_len=512)
    params = heads.init_reward_params(cfg, jax.random.key(0))
    rng = np.random.default_rng(0)
    lens = rng.integers(int(args.len * 0.75), int(args.len * 1.25) + 1, size=args.n)
    seqs = [list(rng.integers(10, cfg.vocab_size, size=n)) for n in lens]
    t = time.perf_counter()
    heads.score(params, cfg, seqs[:args.batch], batch_size=args.batch)  # compile
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    out = heads.score(params, cfg, seqs, batch_size=args.batch)
    dt = time.perf_counter() - t
    assert out["reward"].shape == (args.n,)
    print(f"{cfg.name}, {jax.devices()[0].platform}: {args.n} sequences (mean {lens.mean():.0f} tokens), "
          f"batch {args.batch}")
    print(f"compile + first batch {compile_s:.1f} s; {args.n / dt:.1f} sequences/s, "
          f"{lens.sum() / dt:,.0f} real tokens/s")


if __name__ == "__main__":
    main()
