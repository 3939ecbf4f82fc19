"""Pack variable-length examples into fixed-length rows of the LM batch contract, with exact checkpoint state.

An *example* is already shifted for next-token prediction (`lm_example` does the shift), so a packed row never
asks a document to predict another document's first token:

    tokens [2, 10, 11, 3], mask None  ->  {"inputs": [2, 10, 11], "targets": [10, 11, 3], "loss_mask": [1, 1, 1]}

A *row* (all `[T]`): `inputs`, `targets` int32, `loss_mask` float32, `positions` int32 restarting at 0 for every
segment, `segment_ids` int32 numbered 1.. within the row (0 = padding; attention masks on equal segment ids).
Two packers, both `grain` IterDatasets whose state is a small JSON-able dict (no buffered data):

- `concat` (pretraining): examples are laid end to end and cut every T tokens; a document cut at a row end
  continues as a new segment (positions from 0) at the start of the next row. No padding except at the very end
  of a finite stream. State: the parent's state before the pending example plus the offset into it.
- `first_fit` (SFT): examples are never cut; each goes into the first of `bins` open rows with room (longer than
  T: truncated and counted); when one fits nowhere, all open rows are emitted (rest padded) and it starts the
  next group. State: the parent's state at the group's first example plus the number of rows already emitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Optional

import grain
import numpy as np
from jaxtyping import Float, Int

Example = dict[str, np.ndarray]  # inputs, targets (int32) and loss_mask (float32), all [n]
Row = dict[str, np.ndarray]  # the LM batch contract's five keys, all [T]

PACKING_MODES = ("concat", "first_fit")
ROW_KEYS = ("inputs", "targets", "loss_mask", "positions", "segment_ids")


def lm_example(tokens: Sequence[int] | Int[np.ndarray, "n"],
               loss_mask: Optional[Sequence[float] | Float[np.ndarray, "n"]] = None) -> Example:
    """Shift a token sequence into (inputs, targets, loss_mask); `loss_mask[i]` says whether token i is trained on.

    tokens [2, 7, 8, 3], loss_mask [0, 0, 1, 1] -> inputs [2, 7, 8], targets [7, 8, 3], loss_mask [0, 1, 1]
    """
    tokens = np.asarray(tokens, np.int32)
    if tokens.ndim != 1:
        raise ValueError(f"lm_example wants a 1-D token sequence, got shape {tokens.shape}")
    mask = np.ones(len(tokens), np.float32) if loss_mask is None else np.asarray(loss_mask, np.float32)
    if mask.shape != tokens.shape:
        raise ValueError(f"loss_mask shape {mask.shape} != tokens shape {tokens.shape}")
    return {"inputs": tokens[:-1], "targets": tokens[1:], "loss_mask": mask[1:]}


class _RowBuilder:
    """One row being filled: appends example slices as new segments."""

    def __init__(self, seq_len: int, pad_id: int):
        self.row = {"inputs": np.full(seq_len, pad_id, np.int32), "targets": np.full(seq_len, pad_id, np.int32),
                    "loss_mask": np.zeros(seq_len, np.float32), "positions": np.zeros(seq_len, np.int32),
                    "segment_ids": np.zeros(seq_len, np.int32)}
        self.fill = 0
        self.segments = 0
        self.space = seq_len

    def add(self, ex: Example, start: int, stop: int) -> None:
        n = stop - start
        sl = slice(self.fill, self.fill + n)
        self.segments += 1
        for key in ("inputs", "targets", "loss_mask"):
            self.row[key][sl] = ex[key][start:stop]
        self.row["positions"][sl] = np.arange(n, dtype=np.int32)
        self.row["segment_ids"][sl] = self.segments
        self.fill += n
        self.space -= n


def _length(ex: Example) -> int:
    return len(ex["inputs"])


class _ConcatIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, seq_len: int, pad_id: int):
        super().__init__(parent)
        self._seq_len, self._pad_id = seq_len, pad_id
        self._pending: Optional[Example] = None  # the example the next row starts in
        self._pending_state: Any = None  # parent state from before the pending example was read
        self._offset = 0

    def __next__(self) -> Row:
        b = _RowBuilder(self._seq_len, self._pad_id)
        while b.space:
            if self._pending is None:
                state = self._parent.get_state()
                try:
                    ex = next(self._parent)
                except StopIteration:
                    if b.fill == 0:
                        raise
                    break  # a finite stream's last row is padded
                if _length(ex) == 0:
                    continue
                self._pending, self._pending_state, self._offset = ex, state, 0
            take = min(_length(self._pending) - self._offset, b.space)
            b.add(self._pending, self._offset, self._offset + take)
            self._offset += take
            if self._offset == _length(self._pending):
                self._pending = None
        return b.row

    def get_state(self) -> dict[str, Any]:
        if self._pending is None:
            return {"parent": self._parent.get_state(), "offset": 0}
        return {"parent": self._pending_state, "offset": self._offset}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self._pending, self._offset = None, 0
        if state["offset"]:
            self._pending_state = state["parent"]
            self._pending = next(self._parent)
            self._offset = int(state["offset"])


class _FirstFitIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, seq_len: int, pad_id: int, bins: int):
        super().__init__(parent)
        self._seq_len, self._pad_id, self._bins = seq_len, pad_id, bins
        self._rows: list[Row] = []
        self._emitted = 0
        self._group_state: Any = None  # parent state at the current group's first example
        self._pending: Optional[Example] = None  # first example of the next group, already read
        self._pending_state: Any = None
        self._truncated = 0

    def _fill_group(self) -> None:
        builders: list[_RowBuilder] = []
        if self._pending is not None:
            self._group_state, first = self._pending_state, self._pending
            self._pending = None
            self._place(first, builders)
        else:
            self._group_state = self._parent.get_state()
        while True:
            state = self._parent.get_state()
            try:
                ex = next(self._parent)
            except StopIteration:
                break
            if _length(ex) == 0:
                continue
            if not self._place(ex, builders):
                self._pending, self._pending_state = ex, state
                break
        self._rows = [b.row for b in builders]
        self._emitted = 0

    def _place(self, ex: Example, builders: list[_RowBuilder]) -> bool:
        n = _length(ex)
        if n > self._seq_len:
            self._truncated += 1
            n = self._seq_len
        for b in builders:
            if b.space >= n:
                b.add(ex, 0, n)
                return True
        if len(builders) < self._bins:
            builders.append(_RowBuilder(self._seq_len, self._pad_id))
            builders[-1].add(ex, 0, n)
            return True
        return False

    def __next__(self) -> Row:
        if self._emitted == len(self._rows):
            self._fill_group()
            if not self._rows:
                raise StopIteration
        self._emitted += 1
        return self._rows[self._emitted - 1]

    def get_state(self) -> dict[str, Any]:
        if self._emitted < len(self._rows):
            return {"parent": self._group_state, "emitted": self._emitted, "truncated": self._truncated}
        parent = self._pending_state if self._pending is not None else self._parent.get_state()
        return {"parent": parent, "emitted": 0, "truncated": self._truncated}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self._rows, self._emitted, self._pending = [], 0, None
        self._truncated = int(state.get("truncated", 0))
        if state["emitted"]:
            truncated = self._truncated
            self._fill_group()  # replays the group; its truncations were already counted before the save
            self._truncated = truncated
            self._emitted = int(state["emitted"])


class PackedDataset(grain.IterDataset):
    """Packs an IterDataset of examples (see `lm_example`) into rows of `seq_len`; see the module docstring."""

    def __init__(self, parent: grain.IterDataset, *, seq_len: int, mode: str = "concat", pad_id: int = 0,
                 bins: int = 1):
        super().__init__(parent)
        if mode not in PACKING_MODES:
            raise ValueError(f"packing mode must be one of {PACKING_MODES}, got {mode!r}")
        if seq_len < 1 or bins < 1:
            raise ValueError(f"seq_len ({seq_len}) and bins ({bins}) must be >= 1")
        self._seq_len, self._mode, self._pad_id, self._bins = seq_len, mode, pad_id, bins

    def __iter__(self) -> grain.DatasetIterator:
        parent = self._parent.__iter__()
        if self._mode == "concat":
            return _ConcatIterator(parent, self._seq_len, self._pad_id)
        return _FirstFitIterator(parent, self._seq_len, self._pad_id, self._bins)

    def __str__(self) -> str:
        return f"PackedDataset(seq_len={self._seq_len}, mode={self._mode!r}, bins={self._bins})"


def pack_examples(examples: Iterable[Example], *, seq_len: int, mode: str = "concat", pad_id: int = 0,
                  bins: int = 1) -> list[Row]:
    """Eager packing of a finite list of examples (tests, small SFT sets); same algorithm as `PackedDataset`."""
    ds = grain.MapDataset.source(list(examples)).to_iter_dataset(grain.ReadOptions(num_threads=0))
    return list(PackedDataset(ds, seq_len=seq_len, mode=mode, pad_id=pad_id, bins=bins))


def stack_rows(rows: Sequence[Row]) -> dict[str, np.ndarray]:
    """Rows -> a batch dict of `[B, T]` arrays."""
    return {k: np.stack([r[k] for r in rows]) for k in ROW_KEYS}
