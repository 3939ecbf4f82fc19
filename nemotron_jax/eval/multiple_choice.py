"""Multiple choice by log-likelihood: MMLU, ARC, HellaSwag and Winogrande shapes, k-shot, acc and acc_norm.

Each question becomes one (context, continuation) request per choice; the prediction is the choice with the
highest log-likelihood (`acc`) or the highest log-likelihood per character of the continuation (`acc_norm`, the
length normalisation lm-evaluation-harness uses). All requests of a set go to the scorer at once, so the model
scorer can bucket them. Prompt formats follow the original papers / lm-evaluation-harness:

    MMLU       "The following are multiple choice questions (with answers) about {subject}.\n\n"
               "{question}\nA. {c0}\nB. {c1}\n...\nAnswer:"            -> " A" | " B" | ...
    ARC        "Question: {question}\nAnswer:"                          -> " {choice text}"
    HellaSwag  "{activity}: {ctx_a} {Ctx_b}"                            -> " {ending}"
    Winogrande "{sentence up to _}{option}"                             -> " {rest of sentence}"  (partial scoring)
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from nemotron_jax.eval.io import DatasetError, load_jsonl, require_keys
from nemotron_jax.eval.scoring import LoglikelihoodScorer

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclasses.dataclass(frozen=True)
class MCItem:
    """One question: per-choice contexts and continuations, the gold index, and its solved k-shot form."""

    subject: str
    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    gold: int
    solved: str  # the item with its answer, as it appears among k-shot examples
    header: str = ""  # printed once before the k-shot examples (MMLU's subject line)


# ------------------------------------------------------------------------------------------------------------
# Record shapes
# ------------------------------------------------------------------------------------------------------------


def _gold_index(answer: Any, labels: Sequence[str], where: str) -> int:
    """An answer given as an index, a digit string or a label/letter -> its index into the choices."""
    if isinstance(answer, bool):
        raise DatasetError(f"{where}: answer {answer!r} is not an index or label")
    if isinstance(answer, int):
        idx = answer
    elif isinstance(answer, str) and answer.strip() in labels:
        idx = list(labels).index(answer.strip())
    elif isinstance(answer, str) and answer.strip().isdigit():
        idx = int(answer.strip())
    else:
        raise DatasetError(f"{where}: answer {answer!r} matches none of the labels {list(labels)}")
    if not 0 <= idx < len(labels):
        raise DatasetError(f"{where}: answer index {idx} out of range for {len(labels)} choices")
    return idx


def _choices_list(val: Any, where: str) -> list[str]:
    if not isinstance(val, list) or len(val) < 2 or not all(isinstance(c, str) for c in val):
        raise DatasetError(f"{where}: choices must be a list of at least two strings, got {val!r}")
    return val


def parse_mmlu(obj: dict[str, Any], where: str) -> MCItem:
    """{"question", "choices": [..], "answer": 0 | "A", "subject"?}."""
    require_keys(obj, ("question", "choices", "answer"), where)
    choices = _choices_list(obj["choices"], where)
    letters = LETTERS[:len(choices)]
    gold = _gold_index(obj["answer"], list(letters), where)
    subject = str(obj.get("subject", "all"))
    query = obj["question"].strip() + "\n" + "".join(f"{l}. {c}\n" for l, c in zip(letters, choices)) + "Answer:"
    header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    return MCItem(subject, (query,) * len(choices), tuple(f" {l}" for l in letters), gold,
                  f"{query} {letters[gold]}", header)


def parse_arc(obj: dict[str, Any], where: str) -> MCItem:
    """{"question", "choices": {"text": [..], "label": [..]}, "answerKey"}."""
    require_keys(obj, ("question", "choices", "answerKey"), where)
    ch = obj["choices"]
    if not isinstance(ch, dict) or "text" not in ch or "label" not in ch:
        raise DatasetError(f"{where}: ARC choices must be {{'text': [...], 'label': [...]}}")
    texts = _choices_list(ch["text"], where)
    gold = _gold_index(str(obj["answerKey"]), [str(l) for l in ch["label"]], where)
    query = f"Question: {obj['question'].strip()}\nAnswer:"
    return MCItem(str(obj.get("subject", "all")), (query,) * len(texts), tuple(f" {t}" for t in texts), gold,
                  f"{query} {texts[gold]}")


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def parse_hellaswag(obj: dict[str, Any], where: str) -> MCItem:
    """{"ctx_a", "ctx_b" | "ctx", "endings": [..], "label", "activity_label"?}."""
    require_keys(obj, ("endings", "label"), where)
    if "ctx_a" in obj:
        ctx = obj["ctx_a"] + " " + obj.get("ctx_b", "").capitalize()
    else:
        require_keys(obj, ("ctx",), where)
        ctx = obj["ctx"]
    activity = obj.get("activity_label", "")
    query = _hellaswag_clean(f"{activity}: {ctx}" if activity else ctx)
    endings = [_hellaswag_clean(e) for e in _choices_list(obj["endings"], where)]
    gold = _gold_index(obj["label"], [str(i) for i in range(len(endings))], where)
    return MCItem(str(activity or "all"), (query,) * len(endings), tuple(f" {e}" for e in endings), gold,
                  f"{query} {endings[gold]}")


def parse_winogrande(obj: dict[str, Any], where: str) -> MCItem:
    """{"sentence" with one "_", "option1", "option2", "answer": "1" | "2"}: score the rest of the sentence."""
    require_keys(obj, ("sentence", "option1", "option2", "answer"), where)
    sentence = obj["sentence"]
    if sentence.count("_") != 1:
        raise DatasetError(f"{where}: a Winogrande sentence needs exactly one '_' blank, got {sentence!r}")
    cut = sentence.index("_")
    options = [obj["option1"], obj["option2"]]
    gold = _gold_index(str(obj["answer"]), ["1", "2"], where)
    rest = " " + sentence[cut + 1:].strip()
    return MCItem(str(obj.get("subject", "all")), tuple(sentence[:cut] + o for o in options), (rest, rest), gold,
                  sentence[:cut] + options[gold] + rest)


PARSERS: dict[str, Callable[[dict[str, Any], str], MCItem]] = {
    "mmlu": parse_mmlu, "arc": parse_arc, "hellaswag": parse_hellaswag, "winogrande": parse_winogrande,
}


def detect_format(obj: dict[str, Any]) -> Optional[str]:
    """Guess the record shape from its keys (None when no shape fits)."""
    if {"sentence", "option1", "option2"} <= obj.keys():
        return "winogrande"
    if "endings" in obj:
        return "hellaswag"
    if "answerKey" in obj:
        return "arc"
    if {"question", "choices", "answer"} <= obj.keys():
        return "mmlu"
    return None


def load_mc(path: str | Path, fmt: str = "auto") -> list[MCItem]:
    """Read a multiple-choice JSONL file in one of the PARSERS shapes ("auto": detected per record)."""
    if fmt != "auto" and fmt not in PARSERS:
        raise ValueError(f"unknown multiple-choice format {fmt!r}; use auto or one of {sorted(PARSERS)}")

    def parse(obj: dict[str, Any], where: str) -> MCItem:
        kind = detect_format(obj) if fmt == "auto" else fmt
        if kind is None:
            raise DatasetError(f"{where}: record fits no multiple-choice shape (keys {sorted(obj)}); expected "
                               f"MMLU question/choices/answer, ARC answerKey, HellaSwag endings or Winogrande "
                               f"sentence/option1/option2")
        return PARSERS[kind](obj, where)

    return load_jsonl(path, parse)


# ------------------------------------------------------------------------------------------------------------
# k-shot prompts and evaluation
# ------------------------------------------------------------------------------------------------------------


def fewshot_prefix(item: MCItem, index: int, pool: Sequence[MCItem], k: int, seed: int,
                   exclude_self: bool) -> str:
    """Header plus k solved examples: the same subject's first k when there are enough, else a seeded sample."""
    if k == 0:
        return item.header
    candidates = [j for j in range(len(pool)) if not (exclude_self and j == index)]
    same = [j for j in candidates if pool[j].subject == item.subject]
    if len(same) >= k and not exclude_self:
        chosen = same[:k]  # MMLU: the dev split's first k of the subject
    else:
        src = same if len(same) >= k else candidates
        if len(src) < k:
            raise ValueError(f"{k}-shot needs {k} examples but the few-shot pool has {len(src)}")
        chosen = list(np.random.default_rng([seed, index]).choice(src, size=k, replace=False))
    return item.header + "".join(pool[j].solved + "\n\n" for j in chosen)


def build_requests(items: Sequence[MCItem], *, k: int = 0, fewshot: Optional[Sequence[MCItem]] = None,
                   seed: int = 1234) -> list[tuple[str, str]]:
    """All (context, continuation) requests, item by item, choice by choice."""
    pool = items if fewshot is None else fewshot
    requests = []
    for i, item in enumerate(items):
        prefix = fewshot_prefix(item, i, pool, k, seed, exclude_self=fewshot is None)
        requests += [(prefix + c, k_) for c, k_ in zip(item.contexts, item.continuations)]
    return requests


def _accuracy(correct: Sequence[bool]) -> float:
    return float(np.mean(correct)) if len(correct) else float("nan")


def evaluate_mc(scorer: LoglikelihoodScorer, items: Sequence[MCItem], *, k: int = 0,
                fewshot: Optional[Sequence[MCItem]] = None, seed: int = 1234) -> dict[str, Any]:
    """acc / acc_norm overall (micro), macro over subjects, per subject, and per-item predictions."""
    scores = scorer.loglikelihood(build_requests(items, k=k, fewshot=fewshot, seed=seed))
    rows, start = [], 0
    for item in items:
        n = len(item.continuations)
        lp = np.array([s[0] for s in scores[start:start + n]])
        start += n
        chars = np.array([max(1, len(c)) for c in item.continuations], np.float64)
        pred, pred_norm = int(np.argmax(lp)), int(np.argmax(lp / chars))
        rows.append({"subject": item.subject, "gold": item.gold, "pred": pred, "pred_norm": pred_norm,
                     "logprobs": lp.tolist()})
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_subject[r["subject"]].append(r)
    per_subject = {s: {"acc": _accuracy([r["pred"] == r["gold"] for r in rs]),
                       "acc_norm": _accuracy([r["pred_norm"] == r["gold"] for r in rs]), "n": len(rs)}
                   for s, rs in sorted(by_subject.items())}
    return {"acc": _accuracy([r["pred"] == r["gold"] for r in rows]),
            "acc_norm": _accuracy([r["pred_norm"] == r["gold"] for r in rows]),
            "acc_macro": float(np.mean([v["acc"] for v in per_subject.values()])),
            "n": len(rows), "k_shot": k, "per_subject": per_subject, "predictions": rows}
