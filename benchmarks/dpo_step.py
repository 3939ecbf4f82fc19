"""DPO train-step time with the reference run inside the step vs reference log-probs precomputed once (toy-small, CPU).

    python benchmarks/dpo_step.py [--pairs 8] [--seq 256] [--steps 5] [--preset toy-small]

Prints: the jitted step's time per step for each mode, pairs/s, and the one-off cost of precomputing the cache.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

from nemotron_jax import config as C
from nemotron_jax.model import init_params
from nemotron_jax.train import alignment as A
from nemotron_jax.train.state import TrainState
from nemotron_jax.train.step import make_train_step


def random_pairs(n: int, seq: int, vocab: int, rng: np.random.Generator) -> A.PairTable:
    """Pairs whose prompt fills ~half the row and whose responses fill the rest (all tokens real)."""
    def side(prompt):
        resp = rng.integers(10, vocab, size=seq + 1 - len(prompt)).astype(np.int32)
        ids = np.concatenate([prompt, resp])
        return ids, np.arange(len(ids)) >= len(prompt)
    prompts = [rng.integers(10, vocab, size=seq // 2).astype(np.int32) for _ in range(n)]
    return A.PairTable([side(p) for p in prompts], [side(p) for p in prompts], None, None)


def time_steps(step, state, batch, steps: int) -> tuple[float, float]:
    """(compile + first step seconds, mean seconds per later step)."""
    t = time.perf_counter()
    state, m = step(state, batch)
    jax.block_until_ready(m)
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, batch)
    jax.block_until_ready(m)
    return first, (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="toy-small")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    cfg = C.model_preset(args.preset, max_seq_len=max(args.seq, 256))
    table = random_pairs(args.pairs, args.seq, cfg.vocab_size, np.random.default_rng(0))
    ref = init_params(cfg, jax.random.key(0))
    batch = A.pair_batch(table, np.arange(args.pairs), args.seq, 0)
    opt = optax.adamw(1e-5)

    t = time.perf_counter()
    logps = A.reference_logps(ref, cfg, table, seq_len=args.seq, pad_id=0, batch_size=args.pairs)
    precompute = time.perf_counter() - t
    cached_batch = {**batch, "chosen_ref_logps": logps[:, 0], "rejected_ref_logps": logps[:, 1]}

    loss = C.DPO(beta=0.1, sft_weight=1e-5)
    rows = []
    for mode, b, ref_params in (("on_the_fly", batch, ref), ("cached", cached_batch, None)):
        step = jax.jit(make_train_step(A.preference_loss_fn(cfg, loss, ref_params), opt), donate_argnums=0)
        state = TrainState.create(jax.tree.map(np.array, ref), opt)
        first, per = time_steps(step, state, jax.tree.map(lambda x: x[None], b), args.steps)
        rows.append((mode, first, per))
    print(f"{cfg.name}: {args.pairs} pairs x 2 x {args.seq} tokens per step, {jax.devices()[0].platform}")
    print("| reference | compile + 1st step (s) | step (s) | pairs/s |")
    print("|---|---|---|---|")
    for mode, first, per in rows:
        print(f"| {mode} | {first:.1f} | {per:.3f} | {args.pairs / per:.1f} |")
    print(f"cache precompute (once per dataset and reference): {precompute:.2f} s for {args.pairs} pairs "
          f"(incl. compile)")


if __name__ == "__main__":
    main()
