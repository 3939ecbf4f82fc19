"""The one JSONL reader: (line number, object) pairs, and errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator


def iter_jsonl(path: str | Path, *, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-blank line; a bad line raises `error("path:line: ...")`.

    Callers pass their own error type (DatasetError, ChatDataError, ...) so their users can catch it.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise error(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj
