"""Generative exact match (GSM8K shape): k-shot or chat prompts, answer extraction, numeric normalisation.

Extraction order for a model's free text: the number after the last "####", else after the last "the answer is",
else the last number anywhere. Normalisation makes "$1,234.50", "1234.5" and "1234.50." equal, and "72.0" equal
to "72", so formatting never decides correctness.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence, Union

import numpy as np

from nemotron_jax.eval.io import DatasetError, load_jsonl, require_keys

NUMBER = re.compile(r"-?[$]?\s?\d[\d,]*(?:\.\d+)?|-?[$]?\.\d+")
ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*", re.IGNORECASE)
CHAT_STOP = ("\n<extra_id_1>", "<extra_id_1>", "<|endoftext|>")  # the newline before the marker is the template's


# A plain-text prompt, or a chat conversation ([{"role", "content"}, ...]) that the backend turns into the
# Nemotron template with the generation prompt appended, tokenised exactly as in training (data/chat.py).
Prompt = Union[str, Sequence[dict]]


class Generator(Protocol):
    """prompts -> completions (greedy unless the implementation says otherwise); stop strings are cut off."""

    def generate(self, prompts: Sequence[Prompt], *, max_tokens: int, stop: Sequence[str] = ()) -> list[str]: ...


def prompt_text(prompt: Prompt) -> str:
    """A prompt as the text a completion endpoint is sent (chat conversations rendered with the template)."""
    if isinstance(prompt, str):
        return prompt
    from nemotron_jax.data.chat import render_chat

    return render_chat(list(prompt), add_generation_prompt=True)


def normalize_number(text: str) -> Optional[str]:
    """Canonical decimal string: '$1,234.50' -> '1234.5', '72.0' -> '72', '-0' -> '0'; None if not a number."""
    s = text.strip().rstrip(".").replace(",", "").replace("$", "").replace(" ", "")
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def _last_number(text: str) -> Optional[str]:
    found = NUMBER.findall(text)
    return normalize_number(found[-1]) if found else None


def extract_answer(text: str) -> Optional[str]:
    """The normalised final answer of a free-text solution, or None when it contains no number."""
    if "####" in text:
        tail = text.rsplit("####", 1)[1]
        m = NUMBER.search(tail)
        if m:
            return normalize_number(m.group())
    matches = list(ANSWER_IS.finditer(text))
    if matches:
        m = NUMBER.search(text[matches[-1].end():])
        if m:
            return normalize_number(m.group())
    return _last_number(text)


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut at the earliest stop string (generators that ignore `stop` still get scored fairly)."""
    cut = min([i for i in (text.find(s) for s in stop if s) if i >= 0], default=len(text))
    return text[:cut]


@dataclasses.dataclass(frozen=True)
class MathItem:
    question: str
    answer: str  # normalised gold number
    solution: str  # the full reference solution (used for k-shot examples)


def parse_gsm8k(obj: dict[str, Any], where: str) -> MathItem:
    """{"question", "answer": "...reasoning...\\n#### 72"} (a bare number answer is accepted too)."""
    require_keys(obj, ("question", "answer"), where)
    sol = str(obj["answer"])
    gold = normalize_number(sol.rsplit("####", 1)[1]) if "####" in sol else normalize_number(sol)
    if gold is None:
        raise DatasetError(f"{where}: answer {sol[-40:]!r} has no number after '####'")
    return MathItem(obj["question"].strip(), gold, sol.strip())


def load_gsm8k(path: str | Path) -> list[MathItem]:
    return load_jsonl(path, parse_gsm8k)


def gsm8k_prompt(item: MathItem, shots: Sequence[MathItem], *, chat: bool) -> Prompt:
    """Plain k-shot "Question: ...\\nAnswer: ..." text, or a chat conversation asking for '#### <number>'."""
    if chat:
        user = (item.question + "\nSolve step by step, then give the final answer on the last line as "
                "'#### <number>'.")
        msgs = []
        for s in shots:
            msgs += [{"role": "user", "content": s.question}, {"role": "assistant", "content": s.solution}]
        return msgs + [{"role": "user", "content": user}]
    examples = "".join(f"Question: {s.question}\nAnswer: {s.solution}\n\n" for s in shots)
    return examples + f"Question: {item.question}\nAnswer:"


def evaluate_gsm8k(generator: Generator, items: Sequence[MathItem], *, k: int = 0,
                   fewshot: Optional[Sequence[MathItem]] = None, chat: bool = False, max_tokens: int = 256,
                   seed: int = 1234) -> dict[str, Any]:
    """Exact match of the extracted, normalised answer; k-shot examples come from `fewshot` or other items."""
    prompts = []
    for i, item in enumerate(items):
        pool = list(fewshot) if fewshot is not None else [x for j, x in enumerate(items) if j != i]
        if len(pool) < k:
            raise ValueError(f"{k}-shot needs {k} examples but the few-shot pool has {len(pool)}")
        pick = np.random.default_rng([seed, i]).choice(len(pool), size=k, replace=False) if k else []
        prompts.append(gsm8k_prompt(item, [pool[j] for j in pick], chat=chat))
    stop = CHAT_STOP if chat else ("\n\nQuestion:", "Question:")
    outputs = [truncate_at_stop(t, stop) for t in generator.generate(prompts, max_tokens=max_tokens, stop=stop)]
    rows = [{"gold": it.answer, "pred": extract_answer(out), "output": out} for it, out in zip(items, outputs)]
    correct = [r["pred"] == r["gold"] for r in rows]
    return {"exact_match": float(np.mean(correct)), "n": len(rows), "k_shot": k, "predictions": rows}
