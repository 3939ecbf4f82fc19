"""Checkpoint save: how long training is blocked by an async save vs a blocking one (orbax, this machine).

    python benchmarks/checkpoint_save.py [--preset toy-small] [--repeats 3]

Saves the full TrainState (fp32 params + AdamW moments) of a preset. "blocked" is the time until `save` returns
(training resumes then); "until on disk" adds the wait for the background write.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import jax

from nemotron_jax import config as C
from nemotron_jax import model as M
from nemotron_jax.checkpoint.manager import Checkpointer
from nemotron_jax.train.optim import make_optimizer
from nemotron_jax.train.state import TrainState


def state_bytes(state: TrainState) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def time_saves(state: TrainState, *, async_save: bool, repeats: int) -> tuple[float, float]:
    """Median (seconds blocked in save, seconds until the checkpoint is on disk)."""
    blocked, total = [], []
    root = tempfile.mkdtemp(prefix="ckpt_bench_")
    try:
        with Checkpointer(root, keep=2, async_save=async_save) as ckpt:
            for step in range(repeats + 1):  # the first save warms orbax up and is not counted
                t0 = time.perf_counter()
                ckpt.save(step, state, data_state={"step": step}, meta={"consumed_samples": step})
                t1 = time.perf_counter()
                ckpt.wait()
                t2 = time.perf_counter()
                if step:
                    blocked.append(t1 - t0)
                    total.append(t2 - t0)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return statistics.median(blocked), statistics.median(total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="toy-small")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = C.model_preset(args.preset)
    params = M.init_params(cfg, jax.random.key(0))
    state = jax.jit(lambda p: TrainState.create(p, make_optimizer(C.OptimConfig(), 1e-3)))(params)
    print(f"{args.preset}: TrainState {state_bytes(state) / 2**20:.1f} MiB, {jax.devices()[0].platform}")
    for async_save in (False, True):
        blocked, total = time_saves(state, async_save=async_save, repeats=args.repeats)
        print(f"  {'async   ' if async_save else 'blocking'}  training blocked {blocked * 1e3:8.1f} ms   "
              f"on disk after {total * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
