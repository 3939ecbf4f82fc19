"""Rows decoding together on the device, joining and leaving between decode chunks (continuous batching).

    admit(rows):   prefill the new rows as a batch of their own (cache and budget sized to the running state),
                   then copy them into free row slots of the running state (grown first when they do not fit)
    sync():        fetch tokens / done flags; finish rows (eos, stop id, budget, stop string on the host);
                   free their slots; shrink the state once few rows are left
    decode():      one `decode_chunk` (up to `chunk` lock-step steps) for every live row

A row's tokens do not depend on when it joined or on its batch mates: its cache row holds only its own prompt and
tokens (compact, slot = position), and its sampling key is fold_in(row key, token index). The Sampler runs a
fixed set of rows through this; the BatchingEngine admits new requests at every chunk boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import jax
import numpy as np

from nemotron_jax.inference.sampler import (Completion, Delta, Row, Sampler, _row_arrays, _RowTracker, bucket,
                                            decode_chunk, insert_rows, prefill, resize_state, take_rows,
                                            top_logprobs_bucket)

Tag = tuple[Any, int]  # (owner, index of the row within its owner's request)


@dataclass
class _Slot:
    row: Row
    tag: Tag
    tracker: _RowTracker


class DecodeBatch:
    """A running batch over one Sampler: rows, their device state and their host trackers."""

    def __init__(self, sampler: Sampler):
        self.s = sampler
        self.state: Optional[dict] = None
        self.slots: list[Optional[_Slot]] = []
        self.k = 0

    # ---- sizes -------------------------------------------------------------------------------------------------

    @property
    def active(self) -> int:
        return sum(slot is not None for slot in self.slots)

    @property
    def capacity(self) -> int:
        return len(self.slots)

    def _sizes(self, rows: Sequence[Row]) -> tuple[int, int, int]:
        """(cache slots, token budget, top-logprobs width) that rows need."""
        s, ctx = self.s, self.s.cfg.max_seq_len
        # Cache slots in finer steps than the other sizes: every decode step reads all of them (bench-cpu batch 32:
        # 192 slots instead of 256 made a 64 + 128 token generation 3% faster).
        cache_len = bucket(max(len(r.prompt) + r.params.max_new_tokens for r in rows), s.min_prompt_bucket, ctx,
                           halves=True)
        budget = bucket(max(r.params.max_new_tokens for r in rows), s.min_budget_bucket, ctx)
        return cache_len, budget, top_logprobs_bucket(max(r.params.logprobs or 0 for r in rows))

    def _shape(self) -> tuple[int, int, int]:
        return self.state["cache"]["slot_positions"].shape[1], self.state["tokens"].shape[1], self.k

    # ---- admit -------------------------------------------------------------------------------------------------

    def admit(self, rows: Sequence[Row], tags: Sequence[Tag]) -> None:
        """Prefill `rows` and add them to the running batch (each finished row comes back with its tag)."""
        if not rows:
            return
        s = self.s
        cache_len, budget, k = self._sizes(rows)
        if self.state is not None:
            old = self._shape()
            cache_len, budget, k = max(cache_len, old[0]), max(budget, old[1]), max(k, old[2])
            free = self.capacity - self.active
            batch = self.capacity if free >= len(rows) else s.batch_bucket(self.active + len(rows))
            if (cache_len, budget, k) != old or batch != self.capacity:
                with s._scope():
                    self.state = resize_state(self.state, batch, cache_len, budget, k, s.rules)
                self.slots += [None] * (batch - self.capacity)
        self.k = k
        new = self._prefill(rows, cache_len, budget, k)
        trackers = [_RowTracker(r, s.tokenizer, s.cfg.eos_id) for r in rows]
        if self.state is None:
            self.state = new
            self.slots = [_Slot(r, t, tr) for r, t, tr in zip(rows, tags, trackers)]
            self.slots += [None] * (new["num"].shape[0] - len(rows))
            return
        free = [i for i, slot in enumerate(self.slots) if slot is None][:len(rows)]
        where = np.full(new["num"].shape[0], self.capacity, np.int32)  # padding rows: out of bounds, dropped
        where[:len(rows)] = free
        with s._scope():
            self.state = insert_rows(self.state, new, where, s.rules)
        for i, r, t, tr in zip(free, rows, tags, trackers):
            self.slots[i] = _Slot(r, t, tr)

    def _prefill(self, rows: Sequence[Row], cache_len: int, budget: int, k: int) -> dict:
        s = self.s
        b = s.batch_bucket(len(rows))
        # halves as for the cache, which must hold the whole padded prompt (bucket is monotone: P <= cache_len)
        p = bucket(max(len(r.prompt) for r in rows), s.min_prompt_bucket, s.cfg.max_seq_len, halves=True)
        prompts = np.full((b, p), s.cfg.pad_id, np.int32)
        lengths = np.ones(b, np.int32)
        for i, r in enumerate(rows):
            prompts[i, :len(r.prompt)] = r.prompt
            lengths[i] = len(r.prompt)
        with s._scope():
            return prefill(s.params, s.cfg, prompts, lengths, _row_arrays(rows, b, s.cfg.eos_id), cache_len, budget,
                           k, s.rules)

    # ---- run ---------------------------------------------------------------------------------------------------

    def decode(self) -> None:
        """One decode chunk for every live row."""
        s = self.s
        with s._scope():
            self.state = decode_chunk(s.params, s.cfg, self.state, s.chunk, self.k, s.rules)

    def sync(self) -> tuple[list[tuple[Tag, Delta]], list[tuple[Tag, Completion]]]:
        """Bring the device's progress to the host: stream deltas and the finished rows (their slots are freed)."""
        if self.state is None:
            return [], []
        done, tokens, num = jax.device_get((self.state["done"], self.state["tokens"], self.state["num"]))
        stopped = np.zeros_like(done)
        for i, slot in enumerate(self.slots):
            if slot is not None and slot.tracker.finish is None:
                slot.tracker.update(tokens[i, :num[i]].tolist(), bool(done[i]))
                stopped[i] = slot.tracker.finish is not None and not done[i]  # a stop string, seen on the host
        if stopped.any():
            self.state = {**self.state, "done": self.state["done"] | stopped}
        deltas = [(slot.tag, d) for slot in self.slots
                  if slot is not None and (d := slot.tracker.delta(slot.tag[1])) is not None]
        ended = [i for i, slot in enumerate(self.slots) if slot is not None and slot.tracker.finish is not None]
        finished = self._completions(ended)
        for i in ended:
            self.slots[i] = None
        self._shrink()
        return deltas, finished

    def _completions(self, ended: list[int]) -> list[tuple[Tag, Completion]]:
        if not ended:
            return []
        need_logps = any(self.slots[i].row.params.logprobs is not None for i in ended)
        host = {}
        if need_logps:
            keys = ("logps", "top_ids", "top_logps") if self.k else ("logps",)
            host = jax.device_get({key: self.state[key] for key in keys})
        out = []
        for i in ended:
            slot = self.slots[i]
            r, t = slot.row, slot.tracker
            n = len(t.ids)
            c = Completion(r.prompt_index, r.sample_index, t.ids, t.text, t.finish or "length",
                           prompt_tokens=len(r.prompt))
            if r.params.logprobs is not None:
                c.logprobs = host["logps"][i, :n].tolist()
                m = r.params.logprobs
                c.top_logprobs = [list(zip(host["top_ids"][i, j, :m].tolist(), host["top_logps"][i, j, :m].tolist()))
                                  for j in range(n)] if m else [[] for _ in range(n)]
            out.append((slot.tag, c))
        return out

    def _shrink(self) -> None:
        """Drop the state when no row is left; move the live rows into a smaller batch once they fill <= 1/4."""
        live = [i for i, slot in enumerate(self.slots) if slot is not None]
        if not live:
            self.state, self.slots = None, []
            return
        target = self.s.batch_bucket(len(live))
        if 2 * target >= self.capacity:
            return
        dead = [i for i, slot in enumerate(self.slots) if slot is None]
        order = live + dead[:target - len(live)]
        with self.s._scope():
            self.state = take_rows(self.state, np.asarray(order, np.int32), self.s.rules)
        self.slots = [self.slots[i] for i in order]
