"""JSONL loading for evaluation sets: every malformed line is reported with its file and line number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from nemotron_jax.data import jsonl

T = TypeVar("T")


class DatasetError(ValueError):
    """A dataset file that cannot be read; the message starts with `path:line:`."""


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-blank line; a bad line raises DatasetError naming it."""
    return jsonl.iter_jsonl(path, error=DatasetError)


def require_keys(obj: dict[str, Any], keys: Sequence[str], where: str) -> None:
    """Fail with `where: missing key(s) ...` when a record lacks a field its shape needs."""
    missing = [k for k in keys if k not in obj]
    if missing:
        raise DatasetError(f"{where}: missing key(s) {missing}; the record has {sorted(obj)}")


def load_jsonl(path: str | Path, parse: Callable[[dict[str, Any], str], T]) -> list[T]:
    """Parse every record with `parse(obj, where)`; any error inside `parse` is re-raised with file and line."""
    out = []
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        try:
            out.append(parse(obj, where))
        except DatasetError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DatasetError(f"{where}: malformed record ({type(e).__name__}: {e})") from None
    if not out:
        raise DatasetError(f"{path}: no records")
    return out


def write_jsonl(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write one JSON object per line (UTF-8, no ASCII escaping)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
