"""Continuous batching in front of the sampler: requests join the running device batch at decode-chunk boundaries.

    worker thread:
        loop:
            idle: block for a request, then collect more for up to max_wait_ms (or until max_rows rows)
            running: take whatever requests are queued now, as long as the batch stays within max_rows rows
            admit them (prefilled together, copied into free rows of the running batch)
            sync: bring the last chunk's tokens to the host; finished rows leave (their slots are free for the
                  next arrivals)
            decode: dispatch one chunk (up to `chunk` steps) for every live row
            deliver, while the device decodes: stream the last chunk's deltas to the request that owns each row;
                  a request whose rows have all finished gets its future resolved

A request never waits for a whole batch to finish, and a finished row never idles in the batch. One device, one
worker: other device work (reward scoring) goes through `run_exclusive`, run between chunks in arrival order.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import jax

from nemotron_jax.inference.decode_batch import DecodeBatch
from nemotron_jax.inference.sampler import Completion, Delta, Row, Sampler

DeltaCallback = Callable[[list[Delta]], None]
_CLOSE = object()  # queued by close()


@dataclass
class _GenJob:
    rows: list[Row]
    on_deltas: Optional[DeltaCallback]
    future: Future = field(default_factory=Future)
    results: list[Optional[Completion]] = field(default_factory=list)
    pending: int = 0


@dataclass
class _CallJob:
    fn: Callable[[], Any]
    future: Future = field(default_factory=Future)


@dataclass
class EngineStats:
    batches: int = 0  # admissions: groups of requests prefilled together
    rows: int = 0  # rows admitted
    max_rows_in_batch: int = 0  # most live rows in one decode chunk
    chunks: int = 0  # decode chunks run
    chunk_rows: int = 0  # live rows summed over decode chunks (/ chunks: the mean device batch)


_compiles = [0]  # XLA compilations seen by the listener below
_listening = threading.Lock()
_listener_on = False


def compile_count() -> int:
    """XLA compilations in this process since the first BatchingEngine started (each new combination of batch
    sizes compiles a join / grow / shrink program once; /health reports it so a benchmark can warm up fully)."""
    return _compiles[0]


def _count_compiles() -> None:
    global _listener_on
    with _listening:
        if _listener_on:
            return
        _listener_on = True

    def listener(event: str, _duration: float, **_kw: Any) -> None:
        if event.endswith("backend_compile_duration"):  # fires for persistent-cache hits too
            _compiles[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)


class BatchingEngine:
    """Runs every request's rows in one continuously batched decode (at most `max_rows` live rows)."""

    def __init__(self, sampler: Sampler, *, max_rows: int = 64, max_wait_ms: float = 5.0):
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.sampler, self.max_rows, self.max_wait_s = sampler, max_rows, max_wait_ms / 1000.0
        self.stats = EngineStats()
        _count_compiles()
        self._batch = DecodeBatch(sampler)
        self._queue: queue.Queue = queue.Queue()
        self._held: Optional[Any] = None  # a job taken from the queue that did not fit the running batch
        self._closing = False
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
        """Run fn on the worker thread (so it never overlaps device work of the engine) and return its result."""
        if self._closed.is_set():
            raise RuntimeError("the engine is shut down")
        job = _CallJob(fn)
        self._queue.put(job)
        return job.future.result()

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued and running work, then stop the worker."""
        self._closed.set()
        self._queue.put(_CLOSE)
        self._worker.join(timeout)

    # ---- worker ---------------------------------------------------------------------------------------------------

    def _next(self, timeout: Optional[float]) -> Any:
        """The held job, else the next queued one (timeout None: block; 0: only what is queued now)."""
        if self._held is not None:
            job, self._held = self._held, None
            return job
        if timeout is None:
            return self._queue.get()
        return self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()

    def _loop(self) -> None:
        while not (self._closing and self._batch.active == 0 and self._held is None):
            try:
                self._admit(self._take())
                if self._batch.active:
                    self._step()
            except BaseException as e:  # noqa: BLE001 - every request in the batch learns about the failure
                self._fail_all(e)

    def _take(self) -> list[_GenJob]:
        """Generation jobs to admit now (call jobs met on the way run at once). Idle: block for the first, then
        collect for up to max_wait_ms; running: only what is already queued."""
        jobs, rows = [], self._batch.active
        if rows == 0:
            job, deadline = self._next(None), time.monotonic() + self.max_wait_s
        else:
            job, deadline = None, time.monotonic()
        while True:
            if job is None:
                try:
                    job = self._next(max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    return jobs
            if job is _CLOSE:  # finish what runs, take nothing more
                self._closing = True
                return jobs
            if isinstance(job, _CallJob):
                self._run_call(job)
            elif rows and rows + len(job.rows) > self.max_rows:
                self._held = job  # joins once enough rows have finished
                return jobs
            else:
                jobs.append(job)
                rows += len(job.rows)
                if rows >= self.max_rows:
                    return jobs
            job = None

    def _admit(self, jobs: list[_GenJob]) -> None:
        if not jobs:
            return
        rows, tags = [], []
        for job in jobs:
            job.results, job.pending = [None] * len(job.rows), len(job.rows)
            rows += job.rows
            tags += [(job, i) for i in range(len(job.rows))]
        try:
            self._batch.admit(rows, tags)
        except BaseException as e:  # noqa: BLE001 - these requests fail; the running batch goes on
            for job in jobs:
                job.future.set_exception(e)
            return
        self.stats.batches += 1
        self.stats.rows += len(rows)

    def _step(self) -> None:
        """Sync the last chunk, dispatch the next one, then deliver what the last one produced (the device decodes
        while this thread streams deltas, resolves finished requests and admits the next arrivals)."""
        deltas, finished = self._batch.sync()
        try:
            live = self._batch.active
            if live:
                self.stats.chunks += 1
                self.stats.chunk_rows += live
                self.stats.max_rows_in_batch = max(self.stats.max_rows_in_batch, live)
                self._batch.decode()
        finally:  # finished rows have left the batch: their requests are answered even if the dispatch failed
            self._deliver(deltas, finished)

    @staticmethod
    def _deliver(deltas: list, finished: list) -> None:
        per_job: dict[int, tuple[_GenJob, list[Delta]]] = {}
        for (job, _), d in deltas:
            per_job.setdefault(id(job), (job, []))[1].append(d)
        for job, ds in per_job.values():
            if job.on_deltas is not None:
                job.on_deltas(ds)
        for (job, i), c in finished:
            job.results[i] = c
            job.pending -= 1
            if job.pending == 0:
                job.future.set_result(job.results)

    def _fail_all(self, e: BaseException) -> None:
        jobs = {id(slot.tag[0]): slot.tag[0] for slot in self._batch.slots if slot is not None}
        self._batch = DecodeBatch(self.sampler)
        for job in jobs.values():
            if not job.future.done():
                job.future.set_exception(e)

    @staticmethod
    def _run_call(job: _CallJob) -> None:
        try:
            job.future.set_result(job.fn())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            job.future.set_exception(e)
