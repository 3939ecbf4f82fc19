"""A batching queue in front of the sampler: requests that arrive within a few ms run as one batched generate.

    worker thread:
        job = queue.get()                                   # block for the first request
        until max_wait_ms passes or max_rows rows are collected: take more generation jobs
            (while fewer rows than the last batch have come, wait longer: up to a quarter of the last batch's
             run time, at most `max_patience_ms` -- clients whose answers just went out are about to come back)
        sampler.run_rows(all rows)                          # one batch on the device
        route each chunk's deltas to the request that owns the row; resolve each request's future

One device, one worker: other device work (reward scoring) goes through `run_exclusive`, in arrival order.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from nemotron_jax.inference.sampler import Completion, Delta, Row, Sampler

DeltaCallback = Callable[[list[Delta]], None]


@dataclass
class _GenJob:
    rows: list[Row]
    on_deltas: Optional[DeltaCallback]
    future: Future = field(default_factory=Future)


@dataclass
class _CallJob:
    fn: Callable[[], Any]
    future: Future = field(default_factory=Future)


@dataclass
class EngineStats:
    batches: int = 0
    rows: int = 0
    max_rows_in_batch: int = 0


class BatchingEngine:
    """Collects generation requests for up to `max_wait_ms` (or `max_rows` rows) and runs them as one batch."""

    def __init__(self, sampler: Sampler, *, max_rows: int = 64, max_wait_ms: float = 5.0,
                 max_patience_ms: float = 200.0):
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.sampler, self.max_rows, self.max_wait_s = sampler, max_rows, max_wait_ms / 1000.0
        self.max_patience_s = max_patience_ms / 1000.0
        self._last_rows, self._last_run_s = 0, 0.0
        self.stats = EngineStats()
        self._queue: queue.Queue = queue.Queue()
        self._held: Optional[Any] = None  # a job taken from the queue that did not fit the last batch
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._loop, name="nemotron-batching-engine", daemon=True)
        self._worker.start()

    # ---- public ---------------------------------------------------------------------------------------------------

    def submit(self, rows: Sequence[Row], on_deltas: Optional[DeltaCallback] = None) -> "Future[list[Completion]]":
        """Queue rows for generation; the future gives their Completions in row order."""
        if self._closed.is_set():
            raise RuntimeError("the engine is shut down")
        job = _GenJob(list(rows), on_deltas)
        self._queue.put(job)
        return job.future

    def generate(self, rows: Sequence[Row], on_deltas: Optional[DeltaCallback] = None) -> list[Completion]:
        return self.submit(rows, on_deltas).result()

    def run_exclusive(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the worker thread (so it never overlaps a generation on the device) and return its result."""
        if self._closed.is_set():
            raise RuntimeError("the engine is shut down")
        job = _CallJob(fn)
        self._queue.put(job)
        return job.future.result()

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued work, then stop the worker."""
        self._closed.set()
        self._queue.put(None)
        self._worker.join(timeout)

    # ---- worker ---------------------------------------------------------------------------------------------------

    def _next(self, timeout: Optional[float]) -> Any:
        if self._held is not None:
            job, self._held = self._held, None
            return job
        return self._queue.get(timeout=timeout) if timeout is not None else self._queue.get()

    def _loop(self) -> None:
        while True:
            job = self._next(None)
            if job is None:
                return
            if isinstance(job, _CallJob):
                self._run_call(job)
                continue
            self._run_batch(self._collect(job))

    def _collect(self, first: _GenJob) -> list[_GenJob]:
        """More generation jobs until the wait ends or the batch is full (a job never splits across batches)."""
        jobs, rows = [first], len(first.rows)
        start = time.monotonic()
        patience = min(self.max_patience_s, 0.25 * self._last_run_s)
        while rows < self.max_rows:
            wait = self.max_wait_s + (patience if rows < self._last_rows else 0.0)
            try:
                job = self._next(max(0.0, start + wait - time.monotonic()))
            except queue.Empty:
                break
            if not isinstance(job, _GenJob) or rows + len(job.rows) > self.max_rows:
                self._held = job
                break
            jobs.append(job)
            rows += len(job.rows)
        return jobs

    @staticmethod
    def _run_call(job: _CallJob) -> None:
        try:
            job.future.set_result(job.fn())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            job.future.set_exception(e)

    def _run_batch(self, jobs: list[_GenJob]) -> None:
        rows, owner = [], []
        for j, job in enumerate(jobs):
            rows += job.rows
            owner += [(j, i) for i in range(len(job.rows))]
        self.stats.batches += 1
        self.stats.rows += len(rows)
        self.stats.max_rows_in_batch = max(self.stats.max_rows_in_batch, len(rows))

        def route(deltas: list[Delta]) -> None:
            per_job: dict[int, list[Delta]] = {}
            for d in deltas:
                j, i = owner[d.row]
                per_job.setdefault(j, []).append(Delta(i, d.token_ids, d.text, d.finished))
            for j, ds in per_job.items():
                if jobs[j].on_deltas is not None:
                    jobs[j].on_deltas(ds)

        streaming = any(job.on_deltas is not None for job in jobs)
        t0 = time.monotonic()
        try:
            results = self.sampler.run_rows(rows, on_deltas=route if streaming else None)
        except BaseException as e:  # noqa: BLE001 - every waiting request learns about the failure
            for job in jobs:
                job.future.set_exception(e)
            return
        self._last_rows, self._last_run_s = len(rows), time.monotonic() - t0
        start = 0
        for job in jobs:
            job.future.set_result(results[start:start + len(job.rows)])
            start += len(job.rows)
