"""Random-access document sources: JSONL, parquet, plain text files and in-memory lists.

Every source is a grain `RandomAccessDataSource`: `len(src)` documents, `src[i]` -> the i-th document's text.
Random access is what lets grain shuffle globally, shard across processes by index and resume from a saved index.
A record that cannot be read raises `BadRecordError` whose message starts with `path:line` (parquet: `path:row N`,
in-memory: `name:index N`); the pipeline then stops or skips-and-counts it, by config.

Index cost: a JSONL or blank-line-blocks source scans its files once at construction and keeps 24 bytes per
document (start, length, line number); parquet reads only footers; a read decodes one line or one row group.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
KINDS = ("auto", "jsonl", "parquet", "text", "python")
TEXT_UNITS = ("file", "blocks")


class BadRecordError(ValueError):
    """A record that cannot be turned into a document; `where` is `path:line` (or `path:row N`)."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason

    def __reduce__(self):  # survives grain worker processes
        return (BadRecordError, (self.where, self.reason))


@dataclasses.dataclass(frozen=True)
class BadRecord:
    """The placeholder a skipped record becomes inside the pipeline (counted, then dropped)."""

    where: str
    reason: str


def expand_paths(pattern: str, suffixes: Sequence[str] = ()) -> list[str]:
    """A file, a directory (its files, recursively, filtered by suffix) or a glob -> sorted file list."""
    if os.path.isdir(pattern):
        found = [os.path.join(root, f) for root, _, files in os.walk(pattern) for f in files]
        if suffixes:
            found = [f for f in found if f.endswith(tuple(suffixes))]
    elif os.path.isfile(pattern):
        found = [pattern]
    else:
        found = [f for f in glob.glob(pattern, recursive=True) if os.path.isfile(f)]
    if not found:
        raise FileNotFoundError(f"no data files match {pattern!r}" + (f" (looked for {suffixes})" if suffixes else ""))
    return sorted(found)


def infer_kind(path: str) -> str:
    """Source kind from a file name (or the first file of a directory/glob)."""
    probe = path if os.path.isfile(path) else expand_paths(path)[0]
    if probe.endswith(".gz") or probe.endswith(".zst"):
        raise ValueError(f"{probe}: compressed files cannot be read by index; decompress them first")
    if probe.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if probe.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return "text"


class _FileReader:
    """Per-process cache of open files (sources are pickled into grain workers, so handles open lazily)."""

    def __init__(self) -> None:
        self._files: dict[str, Any] = {}
        self._pid = os.getpid()

    def read(self, path: str, start: int, length: int) -> bytes:
        if os.getpid() != self._pid:  # a forked worker must not share the parent's file offsets
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = open(path, "rb")
        return os.pread(f.fileno(), length, start)

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


class _IndexedRecords:
    """Byte ranges of records across files: global index -> (path, start, length, first line number)."""

    def __init__(self, paths: list[str], starts: list[np.ndarray], lengths: list[np.ndarray],
                 lines: list[np.ndarray]):
        self.paths = paths
        self.file_of = np.concatenate([np.full(len(s), i, np.int32) for i, s in enumerate(starts)]) \
            if starts else np.zeros(0, np.int32)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self.lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        self.lines = np.concatenate(lines) if lines else np.zeros(0, np.int64)
        self._reader = _FileReader()

    def __len__(self) -> int:
        return len(self.starts)

    def read(self, i: int) -> tuple[bytes, str]:
        path = self.paths[self.file_of[i]]
        return self._reader.read(path, int(self.starts[i]), int(self.lengths[i])), f"{path}:{int(self.lines[i])}"


def _index_lines(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, length and 1-based line number of every non-blank line of a file."""
    starts, lengths, lines = [], [], []
    pos = 0
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                starts.append(pos)
                lengths.append(len(line))
                lines.append(n)
            pos += len(line)
    return np.array(starts, np.int64), np.array(lengths, np.int64), np.array(lines, np.int64)


def _index_blocks(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, length and first line of every blank-line-separated block of a text file."""
    starts, lengths, lines = [], [], []
    pos, block_start, block_line, block_end = 0, -1, 0, 0
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                if block_start < 0:
                    block_start, block_line = pos, n
                block_end = pos + len(line)
            elif block_start >= 0:
                starts.append(block_start), lengths.append(block_end - block_start), lines.append(block_line)
                block_start = -1
            pos += len(line)
    if block_start >= 0:
        starts.append(block_start), lengths.append(block_end - block_start), lines.append(block_line)
    return np.array(starts, np.int64), np.array(lengths, np.int64), np.array(lines, np.int64)


def _get_field(record: Any, field: str, where: str) -> str:
    """`record[field]`, where a dotted field (`meta.text`) walks nested objects; it must be a string."""
    value = record
    for key in field.split("."):
        if not isinstance(value, dict) or key not in value:
            have = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise BadRecordError(where, f"no field {field!r} (record has {have})")
        value = value[key]
    if not isinstance(value, str):
        raise BadRecordError(where, f"field {field!r} is {type(value).__name__}, expected a string")
    return value


class JsonlSource:
    """One JSON object per line; the document is `obj[text_field]` (dotted for nested fields)."""

    def __init__(self, path: str, *, text_field: str = "text", name: str = ""):
        self.paths = expand_paths(path, JSONL_SUFFIXES)
        self.text_field = text_field
        self.name = name or path
        self._index = _IndexedRecords(self.paths, *map(list, zip(*[_index_lines(p) for p in self.paths])))

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> str:
        raw, where = self._index.read(i)
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            raise BadRecordError(where, f"malformed JSON ({e.msg} at column {e.colno})") from None
        except UnicodeDecodeError as e:
            raise BadRecordError(where, f"invalid UTF-8 at byte {e.start} of the line") from None
        return _get_field(record, self.text_field, where)

    def __repr__(self) -> str:
        return f"JsonlSource({self.name!r}, {len(self)} records, field={self.text_field!r})"


class TextFileSource:
    """Plain text: one document per file (`unit="file"`) or per blank-line-separated block (`unit="blocks"`)."""

    def __init__(self, path: str, *, unit: str = "file", name: str = ""):
        if unit not in TEXT_UNITS:
            raise ValueError(f"text unit must be one of {TEXT_UNITS}, got {unit!r}")
        self.paths = expand_paths(path)
        self.unit = unit
        self.name = name or path
        if unit == "blocks":
            parts = [_index_blocks(p) for p in self.paths]
        else:
            parts = [(np.array([0], np.int64), np.array([os.path.getsize(p)], np.int64), np.array([1], np.int64))
                     for p in self.paths]
        self._index = _IndexedRecords(self.paths, *map(list, zip(*parts)))

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> str:
        raw, where = self._index.read(i)
        if self.unit == "blocks":
            raw = raw.rstrip(b"\r\n")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            path, first = where.rsplit(":", 1)
            line = int(first) + raw[: e.start].count(b"\n")
            raise BadRecordError(f"{path}:{line}", f"invalid UTF-8 (byte {e.start} of the document)") from None

    def __repr__(self) -> str:
        return f"TextFileSource({self.name!r}, {len(self)} documents, unit={self.unit!r})"


class ParquetSource:
    """Parquet files; the document is the `text_field` column.

    A read decodes its whole row group, so decoded groups stay in a per-process LRU cache of `cache_bytes`: a
    shuffled pass over a corpus that fits the cache decodes each group once; far larger parquet corpora are better
    converted to JSONL (an indexed line read per document).
    """

    def __init__(self, path: str, *, text_field: str = "text", name: str = "", cache_bytes: int = 1 << 30):
        import pyarrow.parquet as pq

        self.paths = expand_paths(path, PARQUET_SUFFIXES)
        self.text_field = text_field
        self.name = name or path
        groups = []  # (file index, row group, first row of the group within the file)
        sizes = []
        for fi, p in enumerate(self.paths):
            meta = pq.ParquetFile(p).metadata
            if text_field not in meta.schema.names:
                raise ValueError(f"{p}: no column {text_field!r} (columns: {meta.schema.names}); set text_field")
            first = 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                groups.append((fi, g, first))
                sizes.append(n)
                first += n
        self._groups = groups
        self._ends = np.cumsum(np.array(sizes, np.int64)) if sizes else np.zeros(0, np.int64)
        self._cache_limit = cache_bytes
        self._cache: OrderedDict = OrderedDict()  # row group -> (decoded column, approximate bytes)
        self._cached_bytes = 0

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def _column(self, g: int) -> list:
        """The decoded text column of row group g; an LRU cache bounded in bytes keeps shuffled reads cheap."""
        if g in self._cache:
            self._cache.move_to_end(g)
            return self._cache[g][0]
        import pyarrow.parquet as pq

        fi, rg, _ = self._groups[g]
        col = pq.ParquetFile(self.paths[fi]).read_row_group(rg, columns=[self.text_field]).column(0)
        size = col.nbytes + 64 * len(col)  # Python str objects add ~50-80 bytes each
        col = col.to_pylist()
        self._cache[g] = (col, size)
        self._cached_bytes += size
        while self._cached_bytes > self._cache_limit and len(self._cache) > 1:
            self._cached_bytes -= self._cache.popitem(last=False)[1][1]
        return col

    def __getitem__(self, i: int) -> str:
        g = int(np.searchsorted(self._ends, i, side="right"))
        start = int(self._ends[g - 1]) if g else 0
        fi, _, first = self._groups[g]
        value = self._column(g)[i - start]
        if not isinstance(value, str):
            where = f"{self.paths[fi]}:row {first + i - start}"
            raise BadRecordError(where, f"column {self.text_field!r} is {type(value).__name__}, expected a string")
        return value

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": OrderedDict(), "_cached_bytes": 0}

    def __repr__(self) -> str:
        return f"ParquetSource({self.name!r}, {len(self)} rows, field={self.text_field!r})"


class MemorySource:
    """Documents already in memory (a list, or any iterable, materialised): the toy world hands its corpus here."""

    def __init__(self, documents: Sequence[str] | Any, *, name: str = "memory"):
        self.documents = list(documents)
        self.name = name

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, i: int) -> str:
        doc = self.documents[i]
        if not isinstance(doc, str):
            raise BadRecordError(f"{self.name}:index {i}", f"document is {type(doc).__name__}, expected a string")
        return doc

    def __repr__(self) -> str:
        return f"MemorySource({self.name!r}, {len(self)} documents)"


def resolve_callable(spec: str) -> Callable[..., Any]:
    """'package.module:function' -> the function."""
    module, sep, func = spec.partition(":")
    if not sep or not module or not func:
        raise ValueError(f"python source path must look like 'package.module:function', got {spec!r}")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load python source {spec!r}: {e}") from e


def open_source(kind: str, path: str, *, text_field: str = "text", text_unit: str = "file", name: str = "",
                kwargs: Optional[dict[str, Any]] = None) -> Any:
    """Build the source a `TextSource` config describes (kind `auto` looks at the file suffix)."""
    if kind not in KINDS:
        raise ValueError(f"source kind must be one of {KINDS}, got {kind!r}")
    if kind == "python":
        return MemorySource(resolve_callable(path)(**(kwargs or {})), name=name or path)
    kind = infer_kind(path) if kind == "auto" else kind
    if kind == "jsonl":
        return JsonlSource(path, text_field=text_field, name=name)
    if kind == "parquet":
        return ParquetSource(path, text_field=text_field, name=name)
    return TextFileSource(path, unit=text_unit, name=name)

