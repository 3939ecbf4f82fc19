"""The one training loop: every task (pretraining, SFT, DPO, RPO, reward model) runs through `run(experiment)`.

    task     = make_task(exp)                       # exp.loss's type selects it (train/tasks.py: the extension point)
    runtime  = single device, or the parallelism engineer's sharded builder when exp.parallel spans > 1 device
    ramp     = make_ramp(exp.batch, data_parallel)  # global batch -> accumulation count A over [b = micro x DP] rows
    total    = exp.steps, or the steps the ramp needs to reach exp.train_samples / train_tokens
    state    = restore the newest checkpoint (params, optimizer + LR position, step, consumed samples, data state)
               else init_from's params, else task.init_params(seed)
    while step < total:
        A = ramp.accum_at(consumed)
        batch = stack A microbatches from the data iterator          # [A, b, T]: one compile per distinct A
        state, metrics = step_fn(state, batch)                       # jitted, state donated
        consumed += A * b
        stop with a clear error after optim.max_nonfinite_in_a_row skipped (non-finite) steps in a row
        log (JSONL, TensorBoard, progress bar); save every checkpoint.save_every steps
        on SIGTERM/SIGUSR1: save now, wait for it, return status "preempted"
    save the final step, wait for pending saves
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import jax
import numpy as np

from nemotron_jax.checkpoint.manager import Checkpointer, PreemptionFlag
from nemotron_jax.checkpoint.params_io import read_params
from nemotron_jax.config import ConfigError, Experiment
from nemotron_jax.train.metrics import MetricsLogger, plot_loss
from nemotron_jax.train.optim import make_optimizer
from nemotron_jax.train.ramp import BatchRamp, make_ramp
from nemotron_jax.train.runtime import Runtime, make_runtime
from nemotron_jax.train.schedules import make_schedule
from nemotron_jax.train.state import TrainState
from nemotron_jax.train.tasks import DataIterator, Task, make_task


class NonFiniteError(RuntimeError):
    """Too many non-finite (skipped) steps in a row."""


@dataclass
class RunResult:
    """What a run (or one segment of it, when preempted) did."""

    state: TrainState
    step: int
    consumed_samples: int
    status: str  # "finished" | "preempted" | "stopped"
    run_dir: Path
    records: list[dict] = field(default_factory=list)
    runtime: Optional[Runtime] = None


def total_steps(exp: Experiment, ramp: BatchRamp) -> int:
    """Training length in optimizer steps, from exp.steps or the samples/tokens the ramp must consume."""
    if exp.steps is not None:
        return exp.steps
    samples = exp.train_samples if exp.train_samples is not None else math.ceil(exp.train_tokens / exp.batch.seq_len)
    return ramp.steps_for_samples(samples)


def next_batch(data: DataIterator, accum: int) -> dict[str, np.ndarray]:
    """A microbatches from the iterator stacked on a leading axis: {key: [A, rows, ...]}."""
    micro = [next(data) for _ in range(accum)]
    return {k: np.stack([m[k] for m in micro]) for k in micro[0]}


def _start_state(exp: Experiment, task: Task, runtime: Runtime, ckpt: Checkpointer,
                 data: DataIterator) -> tuple[TrainState, int]:
    """(state, consumed samples): resumed from the newest checkpoint, or from init_from, or the task's starting
    weights, or fresh."""
    if exp.checkpoint.resume and ckpt.latest_step() is not None:
        state, data_state, meta = ckpt.restore(runtime.abstract_state())
        data.set_state(data_state)
        return state, int(meta["consumed_samples"])
    if exp.init_from is not None:  # restored straight into the step's shardings: no host or device holds it all
        return runtime.state_from(read_params(exp.init_from, target=runtime.abstract_state().params)), 0
    if task.start_params is not None:
        return runtime.state_from(task.start_params(jax.random.key(exp.seed), runtime.abstract_state().params)), 0
    return runtime.fresh_state(jax.random.key(exp.seed)), 0


def _check_finite(state: TrainState, limit: int, record: dict) -> None:
    in_a_row = int(state.nonfinite_in_a_row)
    if in_a_row >= limit:
        raise NonFiniteError(f"{in_a_row} non-finite steps in a row (last loss={record.get('loss')}, grad_norm="
                             f"{record.get('grad_norm')}) at step {int(state.step)}; updates were skipped and the "
                             f"last finite parameters kept. Lower optim.lr, raise optim.warmup_steps, check the data "
                             f"(or raise optim.max_nonfinite_in_a_row).")


def _save(ckpt: Checkpointer, state: TrainState, data: DataIterator, consumed: int, exp: Experiment) -> None:
    meta = {"consumed_samples": consumed, "consumed_tokens": consumed * exp.batch.seq_len, "experiment": exp.name}
    ckpt.save(int(state.step), state, data_state=data.get_state(), meta=meta)


def _build(exp: Experiment, task: Task) -> tuple[Runtime, BatchRamp, int, Callable, DataIterator]:
    """(runtime with the jitted step, ramp, total steps, LR schedule, this process's data iterator)."""
    runtime = make_runtime(exp)
    ramp = make_ramp(exp.batch, data_parallel=runtime.data_parallel, seq_len=exp.batch.seq_len)
    total = total_steps(exp, ramp)
    schedule = make_schedule(exp.optim, total)
    runtime.build(task, make_optimizer(exp.optim, schedule))
    if ramp.rows % jax.process_count():
        raise ConfigError(f"a microbatch of {ramp.rows} rows does not split across {jax.process_count()} processes; "
                          f"make batch.micro_batch x data-parallel size a multiple of the process count")
    data = task.data_iterator(rows=ramp.rows // jax.process_count(), process_index=jax.process_index(),
                              process_count=jax.process_count())
    return runtime, ramp, total, schedule, data


def run(exp: Experiment, *, task: Optional[Task] = None, stop_after: Optional[int] = None,
        on_step: Optional[Callable[[int, dict], None]] = None) -> RunResult:
    """Train `exp` to its length (resuming when a checkpoint exists). `stop_after` ends this call at that step
    without a final save (a crash); `on_step(step, record)` sees every step's metrics."""
    task = task or make_task(exp)
    runtime, ramp, total, schedule, data = _build(exp, task)
    run_dir = Path(exp.out_dir)
    ckpt = Checkpointer(exp.checkpoint.dir or run_dir / "checkpoints", keep=exp.checkpoint.keep,
                        async_save=exp.checkpoint.async_save)
    state, consumed = _start_state(exp, task, runtime, ckpt, data)
    step = int(state.step)
    logger = MetricsLogger(run_dir, exp.logging, model=exp.model, seq_len=exp.batch.seq_len, total_steps=total,
                           start_step=step, num_devices=runtime.num_devices)
    records, status = [], "finished"
    preempt = PreemptionFlag() if exp.checkpoint.save_on_sigterm else None
    try:
        with preempt or contextlib.nullcontext():
            while step < total:
                t0 = time.perf_counter()  # step time includes waiting for data: it is the real throughput
                accum = ramp.accum_at(consumed)
                state, metrics = runtime.step(state, runtime.put_batch(next_batch(data, accum)))
                jax.block_until_ready(metrics)
                step, consumed = step + 1, consumed + accum * ramp.rows
                updates = step - int(state.nonfinite_total)  # the LR schedule counts applied updates only
                extra = {"lr": float(schedule(max(updates - 1, 0))), "accum": accum, "consumed_samples": consumed}
                record = logger.record(step, metrics, batch_size=accum * ramp.rows,
                                       step_time_s=time.perf_counter() - t0, extra=extra)
                if step % exp.logging.every == 0 or step == total:
                    logger.write(record)
                logger.advance(step, record)
                records.append(record)
                if on_step:
                    on_step(step, record)
                _check_finite(state, exp.optim.max_nonfinite_in_a_row, record)
                preempted = preempt is not None and preempt.is_set()
                if step % exp.checkpoint.save_every == 0 or step == total or preempted:
                    _save(ckpt, state, data, consumed, exp)
                if preempted or (stop_after is not None and stop_after <= step < total):
                    status = "preempted" if preempted else "stopped"
                    break
    finally:
        ckpt.close()  # waits for pending async saves
        logger.close()
    jsonl = run_dir / "metrics.jsonl"
    if jax.process_index() == 0 and exp.logging.jsonl and jsonl.exists():
        plot_loss(jsonl, run_dir / "loss_curve.png", title=exp.name)
    return RunResult(state, step, consumed, status, run_dir, records, runtime)


__all__ = ["ConfigError", "NonFiniteError", "RunResult", "run", "total_steps", "next_batch"]
