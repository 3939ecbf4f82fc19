"""Parsing what generator models return: lists (JSON, numbered, bulleted, plain lines), yes/no, judge verdicts,
final answers, and polite filler in role-played user turns.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from typing import Optional


@dataclasses.dataclass
class ParseStats:
    """How list outputs were parsed: per method, plus failures (nothing usable)."""

    counts: dict = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, method: str) -> None:
        with self._lock:
            self.counts[method] = self.counts.get(method, 0) + 1

    @property
    def failures(self) -> int:
        return self.counts.get("failed", 0)


_NUMBERED = re.compile(r"^\s*(?:\(?\d{1,3}[.):]|#\d{1,3}[.):]?)\s+(.*\S)\s*$")
_BULLETED = re.compile(r"^\s*(?:[-*•+]|\u2022)\s+(.*\S)\s*$")


def _clean_item(text: str) -> str:
    text = re.sub(r"^\*\*(.+?)\*\*:?$", r"\1", text.strip())  # "**Topic**" -> "Topic"
    return text.strip().strip('"').strip()


def _json_list(text: str) -> Optional[list[str]]:
    m = re.search(r"\[.*\]", text, flags=re.S)
    if not m:
        return None
    try:
        value = json.loads(m.group(0))
    except ValueError:
        return None
    if not isinstance(value, list) or not value:
        return None
    items = [v if isinstance(v, str) else json.dumps(v) for v in value]
    return [i.strip() for i in items if str(i).strip()]


def _marked_list(text: str, pattern: re.Pattern) -> Optional[list[str]]:
    """Items introduced by a marker; unmarked lines after an item continue it (wrapped text)."""
    items: list[str] = []
    for line in text.splitlines():
        m = pattern.match(line)
        if m:
            items.append(m.group(1))
        elif items and line.strip() and line.startswith((" ", "\t")):
            items[-1] += " " + line.strip()
    return items if len(items) >= 2 or (items and len(text.strip().splitlines()) == 1) else None


def parse_list(text: str, stats: Optional[ParseStats] = None, *, max_items: Optional[int] = None) -> list[str]:
    """Items of a model-written list: JSON array, else numbered, else bulleted, else plain lines; [] if none.

    "1. Food\n2. Tech" -> ["Food", "Tech"];  '["a", "b"]' -> ["a", "b"];  "- x\n- y" -> ["x", "y"].
    """
    for method, parse in (("json", _json_list), ("numbered", lambda t: _marked_list(t, _NUMBERED)),
                          ("bulleted", lambda t: _marked_list(t, _BULLETED)), ("lines", _plain_lines)):
        items = parse(text)
        if items:
            items = [c for c in (_clean_item(i) for i in items) if c]
            items = list(dict.fromkeys(items))  # drop repeats, keep order
        if items:
            if stats is not None:
                stats.add(method)
            return items[:max_items] if max_items else items
    if stats is not None:
        stats.add("failed")
    return []


def _plain_lines(text: str) -> Optional[list[str]]:
    """Fallback: several short non-empty lines that are not a preamble ending in ':'."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.endswith(":")]
    return lines if len(lines) >= 2 else None


def parse_yes_no(text: str) -> Optional[bool]:
    """True for an answer starting with yes, False for no, None when neither is clear."""
    m = re.match(r"^\W*(yes|no)\b", text.strip(), flags=re.I)
    if m:
        return m.group(1).lower() == "yes"
    words = set(re.findall(r"\b(yes|no)\b", text.lower()))
    return (words == {"yes"}) if len(words) == 1 else None


def parse_verdict(text: str) -> Optional[str]:
    """'A' or 'B' from a judge's '[[A]]'/'[[B]]' (the last one given), else None."""
    found = re.findall(r"\[\[\s*([AB])\s*\]\]", text)
    return found[-1] if found else None


_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"


def extract_answer(text: str) -> Optional[str]:
    """The final answer of a worked response: \\boxed{...}, else 'answer is/: X', else the last number."""
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", text)
    if boxed:
        return boxed[-1].strip()
    marked = re.findall(r"(?:final answer|answer)\s*(?:is\s*:?|:)\s*([^\n]+)", text, flags=re.I)
    if marked:
        return marked[-1].strip().rstrip(".").strip()
    numbers = re.findall(_NUMBER, text)
    return numbers[-1] if numbers else None


def normalize_answer(answer: str) -> str:
    """'1,000.0' -> '1000'; '3/4' -> '0.75'; other text lowercased with outer punctuation and spaces removed."""
    a = answer.strip().strip("$").strip()
    m = re.fullmatch(r"(-?\d[\d,]*(?:\.\d+)?)(?:\s*/\s*(\d+))?", a)
    if m:
        value = float(m.group(1).replace(",", ""))
        if m.group(2):
            value /= float(m.group(2))
        return format(round(value, 9), "g") if value != int(value) else str(int(value))
    return re.sub(r"\s+", " ", a.lower().strip(" .!?\"'")).strip()


def answers_match(response: str, reference: str) -> bool:
    """Whether the answer extracted from `response` equals `reference` after normalisation."""
    got = extract_answer(response)
    return got is not None and normalize_answer(got) == normalize_answer(str(reference))


_FILLER = [
    r"^(?:thank you|thanks)(?: (?:so|very) much)?(?: for [^.!?,]*)?[.!?,]*\s*",
    r"^(?:that'?s|this is|what an?) (?:great|helpful|interesting|wonderful|fantastic|excellent)[^.!?]*[.!?]+\s*",
    r"^(?:great|wow|awesome|perfect|excellent|okay|ok|sure|i see|got it|interesting)[,.!]+\s*",
    r"^i (?:really )?appreciate [^.!?]*[.!?]+\s*",
    r"^(?:that|this) (?:helps|makes sense|is (?:clear|useful|very helpful))[^.!?]*[.!?]+\s*",
]


def clean_polite_filler(text: str) -> str:
    """Strip leading thanks/praise from a role-played user turn: 'Thanks! That helps. Why X?' -> 'Why X?'."""
    out = text.strip()
    changed = True
    while changed and out:
        changed = False
        for pat in _FILLER:
            new = re.sub(pat, "", out, flags=re.I).strip()
            if new != out and new:
                out, changed = new, True
    out = re.sub(r"\s*(?:thanks|thank you)(?: (?:so|very) much)?(?: in advance)?[.!]*$", "", out, flags=re.I)
    return out.strip() or text.strip()
