"""The pretraining data pipeline (grain): blended sources -> documents -> tokens -> packed rows -> LM batches.

Per source s (each a random-access document source, data/sources.py):

    documents = source.shuffle(seed_s).repeat(num_epochs)[shard_index::shard_count]   # global shuffle, by index
    examples  = documents.map(read -> tokenize -> [bos] + ids + [eos] -> lm_example)  # shift inside the document
    rows_s    = pack(drop_and_count_bad_records(examples), seq_len)                  # data/packing.py

    batches   = mix({s: rows_s}, weights).batch(batch_size)  # weights share out *tokens*: a row holds seq_len

Properties the tests pin down: the same seed gives the same batches; shard k of n sees documents k, k+n, ... of
every source's global order (shards are disjoint and together complete); the iterator state is a small JSON-able
dict, and `set_state(state)` continues with exactly the batch that followed `get_state()`; a malformed record
either stops the run with `path:line: reason` or is skipped, logged with its `path:line` and counted (`stats()`).

The loop calls `make_lm_iterator(data_cfg, tokenizer, batch_size=<rows per process per next()>, seq_len=...,
shard_index=jax.process_index(), shard_count=jax.process_count(), start_state=<saved state or None>)`.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import weakref
import zlib
from collections.abc import Mapping
from typing import Any, Optional

import grain
import numpy as np

from nemotron_jax.config import ConfigError, TextData, TextSource
from nemotron_jax.data.packing import PackedDataset, lm_example
from nemotron_jax.data.sources import BadRecord, BadRecordError, open_source
from nemotron_jax.data.tokenizer import Tokenizer

log = logging.getLogger(__name__)
STATE_FORMAT = 1


# ---- building blocks --------------------------------------------------------------------------------------------


def open_text_source(src: TextSource) -> Any:
    """The document source a `TextSource` config names."""
    return open_source(src.kind, src.path, text_field=src.text_field, text_unit=src.text_unit, name=src.label,
                       kwargs=dict(src.kwargs))


def source_seed(seed: int, name: str) -> int:
    """A per-source shuffle seed: independent streams for different sources, stable under reordering them."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


class _Guarded:
    """A source whose bad records come back as `BadRecord` (skip mode) instead of raising (raise mode)."""

    def __init__(self, source: Any, on_bad_record: str):
        self.source, self.skip = source, on_bad_record == "skip"

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> str | BadRecord:
        try:
            return self.source[i]
        except BadRecordError as e:
            if self.skip:
                return BadRecord(e.where, e.reason)
            raise


@dataclasses.dataclass(frozen=True)
class _Tokenize:
    """Document text -> an `lm_example` of `[bos] + ids + [eos]` (bad records pass through untouched)."""

    tokenizer: Tokenizer
    bos: bool
    eos: bool

    def __call__(self, doc: str | BadRecord) -> dict[str, np.ndarray] | BadRecord:
        if isinstance(doc, BadRecord):
            return doc
        return lm_example(self.tokenizer.encode(doc, bos=self.bos, eos=self.eos))


class _CountBadIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, source: str, max_bad: Optional[int]):
        super().__init__(parent)
        self._source, self._max_bad = source, max_bad
        self._bad = 0
        self._docs = 0

    def __next__(self) -> dict[str, np.ndarray]:
        while True:
            item = next(self._parent)
            if not isinstance(item, BadRecord):
                self._docs += 1
                return item
            self._bad += 1
            if self._bad <= 10 or self._bad & (self._bad - 1) == 0:  # the first ten, then at powers of two
                log.warning("skipped malformed record %s: %s (%d skipped so far in source %r)", item.where,
                            item.reason, self._bad, self._source)
            if self._max_bad is not None and self._bad > self._max_bad:
                raise BadRecordError(item.where, f"{item.reason}; source {self._source!r} has now skipped "
                                                 f"{self._bad} malformed records, more than max_bad_records="
                                                 f"{self._max_bad}")

    def get_state(self) -> dict[str, Any]:
        return {"parent": self._parent.get_state(), "source": self._source, "bad_records": self._bad,
                "documents": self._docs}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self._bad, self._docs = int(state["bad_records"]), int(state["documents"])


class CountBadRecords(grain.IterDataset):
    """Drops `BadRecord` placeholders, logging each one's `path:line` and counting them in the iterator state."""

    def __init__(self, parent: grain.IterDataset, *, source: str, max_bad: Optional[int] = None):
        super().__init__(parent)
        self._source, self._max_bad = source, max_bad

    def __iter__(self) -> grain.DatasetIterator:
        return _CountBadIterator(self._parent.__iter__(), self._source, self._max_bad)


def document_dataset(source: Any, *, seed: int, shuffle: bool = True, num_epochs: Optional[int] = None,
                     shard_index: int = 0, shard_count: int = 1, on_bad_record: str = "skip") -> grain.MapDataset:
    """A source's documents in their global (shuffled, repeated) order, this shard's share: k, k+n, k+2n, ..."""
    if len(source) == 0:
        raise ValueError(f"source {getattr(source, 'name', source)!r} has no documents")
    ds = grain.MapDataset.source(_Guarded(source, on_bad_record))
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs)  # each epoch reshuffled (grain folds the epoch into the seed)
    return ds[shard_index::shard_count]


def packed_rows(docs: grain.MapDataset, tokenizer: Tokenizer, data: TextData, *, seq_len: int,
                name: str) -> grain.IterDataset:
    """Tokenize, drop-and-count bad records, and pack one source's documents into rows of `seq_len`."""
    examples = docs.map(_Tokenize(tokenizer, data.add_bos, data.add_eos))
    it = examples.to_iter_dataset(grain.ReadOptions(num_threads=data.read_threads,
                                                    prefetch_buffer_size=4 * data.read_threads))
    it = CountBadRecords(it, source=name, max_bad=data.max_bad_records)
    return PackedDataset(it, seq_len=seq_len, mode=data.packing, pad_id=tokenizer.pad_id, bins=data.packing_bins)


def lm_dataset(data: TextData, tokenizer: Tokenizer, *, batch_size: int, seq_len: int, seed: int,
               shard_index: int = 0, shard_count: int = 1,
               sources: Optional[Mapping[str, tuple[Any, float]]] = None,
               pad_final_batch: bool = False) -> grain.IterDataset:
    """The whole pipeline as a grain IterDataset of `[batch_size, seq_len]` LM batches (see the module docstring).

    A finite stream (`num_epochs`) drops its last partial batch, or with `pad_final_batch` fills it up with empty
    rows (segment 0, loss_mask 0) so an evaluation pass sees every token without a new batch shape.

    `sources` (name -> (document source, weight)) replaces the sources `data` names, e.g. in-memory corpora.
    """
    if sources is None:
        sources = {s.label: (open_text_source(s), s.weight) for s in data.sources}
    rows = {}
    for name, (source, _) in sources.items():
        docs = document_dataset(source, seed=source_seed(seed, name), shuffle=data.shuffle,
                                num_epochs=data.num_epochs, shard_index=shard_index, shard_count=shard_count,
                                on_bad_record=data.on_bad_record)
        rows[name] = packed_rows(docs, tokenizer, data, seq_len=seq_len, name=name)
    weights = {name: float(w) for name, (_, w) in sources.items()}
    mixed = grain.IterDataset.mix(rows, weights) if len(rows) > 1 else next(iter(rows.values()))
    batches = mixed.batch(batch_size, drop_remainder=not pad_final_batch)
    if pad_final_batch:
        batches = batches.map(_PadBatch(batch_size, tokenizer.pad_id))
    if data.worker_count > 0:
        _allow_grain_workers()
        batches = batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=data.worker_count))
    elif data.prefetch_batches > 0:
        batches = grain.experimental.ThreadPrefetchIterDataset(batches, prefetch_buffer_size=data.prefetch_batches)
    return batches


def _allow_grain_workers() -> None:
    """grain's worker processes read absl flags; outside `absl.app.run` (plain scripts, pytest) mark them parsed.

    Workers are spawned processes: a script using them must build the iterator under `if __name__ == "__main__"`.
    """
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


@dataclasses.dataclass(frozen=True)
class _PadBatch:
    """Fills a short final batch up to `rows` with empty rows (pad tokens, segment 0, loss_mask 0)."""

    rows: int
    pad_id: int

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        short = self.rows - len(batch["inputs"])
        if short == 0:
            return batch
        fill = {k: 0 for k in batch} | {"inputs": self.pad_id, "targets": self.pad_id}
        return {k: np.concatenate([v, np.full((short,) + v.shape[1:], fill[k], v.dtype)]) for k, v in batch.items()}


# ---- the iterator the loop holds --------------------------------------------------------------------------------


def per_process_batch(global_batch: int, process_count: int) -> int:
    """Rows each process loads per global batch; the global batch must split evenly across processes."""
    if global_batch % process_count:
        raise ConfigError(f"global batch {global_batch} does not split across {process_count} processes; make it "
                          f"a multiple of {process_count}")
    return global_batch // process_count


class LMIterator:
    """Yields LM batches (numpy dicts, all `[B, T]`); `get_state()`/`set_state()` give exact, JSON-able resume."""

    def __init__(self, dataset: grain.IterDataset, identity: dict[str, Any]):
        self._identity = identity
        self._it = iter(dataset)
        _LIVE.add(self)

    def close(self) -> None:
        """Stop background prefetch threads / worker processes (also done at interpreter exit)."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()

    def __iter__(self) -> "LMIterator":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._it)

    def get_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: the next `next()` after `set_state(snapshot)` returns the same batch."""
        return {"format": STATE_FORMAT, "identity": self._identity, "pipeline": self._it.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"data iterator state has format {state.get('format')!r}, expected {STATE_FORMAT}")
        saved = state["identity"]
        changed = sorted(k for k in set(saved) | set(self._identity) if saved.get(k) != self._identity.get(k))
        if changed:
            diffs = "; ".join(f"{k}: saved {saved.get(k)!r}, now {self._identity.get(k)!r}" for k in changed)
            raise ValueError(f"cannot resume the data stream: the pipeline changed since the state was saved "
                             f"({diffs}). Resume with the saved data settings or start the data from scratch.")
        self._it.set_state(state["pipeline"])

    def stats(self) -> dict[str, dict[str, int]]:
        """Per source: documents delivered to the packer and malformed records skipped, so far (all workers)."""
        out: dict[str, dict[str, int]] = {}
        for counter in _find_counters(self._it.get_state()):
            entry = out.setdefault(counter["source"], {"documents": 0, "bad_records": 0})
            entry["documents"] += counter["documents"]
            entry["bad_records"] += counter["bad_records"]
        return out


# Iterators still open at exit are closed while the interpreter is intact (grain's own __del__ then runs
# after module teardown and prints spurious errors).
_LIVE: "weakref.WeakSet[LMIterator]" = weakref.WeakSet()


@atexit.register
def _close_live_iterators() -> None:
    for it in list(_LIVE):
        it.close()
        it._it = None  # free grain's iterators now, so their __del__ runs while modules still exist


def _find_counters(state: Any) -> list[dict[str, Any]]:
    """Every bad-record counter's state inside a (nested, possibly per-worker) grain iterator state."""
    if isinstance(state, dict):
        if "bad_records" in state and "source" in state:
            return [state]
        return [c for v in state.values() for c in _find_counters(v)]
    if isinstance(state, (list, tuple)):
        return [c for v in state for c in _find_counters(v)]
    return []


def _identity(data: TextData, tokenizer: Tokenizer, names: list[str], **kw: Any) -> dict[str, Any]:
    """What fixes the batch stream; a resumed run must match it (thread/prefetch settings and error policy don't)."""
    ident = {"sources": names, "weights": [], "tokenizer_crc32": zlib.crc32(tokenizer.__getstate__()["proto"]),
             **{k: getattr(data, k) for k in ("shuffle", "num_epochs", "add_bos", "add_eos", "packing",
                                              "packing_bins", "worker_count")}, **kw}
    return json.loads(json.dumps(ident))


def make_lm_iterator(data: TextData, tokenizer: Tokenizer, *, batch_size: int, seq_len: int,
                     seed: Optional[int] = None, shard_index: int = 0, shard_count: int = 1,
                     start_state: Optional[dict[str, Any]] = None,
                     sources: Optional[Mapping[str, tuple[Any, float]]] = None,
                     pad_final_batch: bool = False) -> LMIterator:
    """The loop's data: `batch_size` rows (this process's share) of `seq_len` tokens per `next()`.

    `seed` defaults to `data.seed`; shard k of n reads documents k, k+n, ... of each source (use the process index
    and count); `start_state` is a `get_state()` snapshot saved with a checkpoint; `sources` (name -> (document
    source, weight)) replaces the sources `data` names; `pad_final_batch`: see `lm_dataset` (evaluation passes).
    """
    if not 0 <= shard_index < shard_count:
        raise ConfigError(f"shard_index={shard_index} must be in [0, shard_count={shard_count})")
    if batch_size < 1 or seq_len < 2:
        raise ConfigError(f"batch_size ({batch_size}) must be >= 1 and seq_len ({seq_len}) >= 2")
    seed = data.seed if seed is None else seed
    if sources is None:
        sources = {s.label: (open_text_source(s), s.weight) for s in data.sources}
    ds = lm_dataset(data, tokenizer, batch_size=batch_size, seq_len=seq_len, seed=seed, shard_index=shard_index,
                    shard_count=shard_count, sources=sources, pad_final_batch=pad_final_batch)
    ident = _identity(data, tokenizer, list(sources), batch_size=batch_size, seq_len=seq_len, seed=seed,
                      shard_index=shard_index, shard_count=shard_count)
    ident["weights"] = [float(w) for _, w in sources.values()]
    ident["documents"] = [len(src) for src, _ in sources.values()]  # a changed corpus changes the stream
    it = LMIterator(ds, ident)
    if start_state is not None:
        it.set_state(start_state)
    return it
