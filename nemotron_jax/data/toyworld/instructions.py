"""Toy tasks under IFEval-style instructions: which instructions fit a task, and how to write responses to them.

Descriptions and verifiers come from the SDG registry (`nemotron_jax.sdg.instructions`); this module adds what only
the toy world knows: for an answer and an instruction list, the *oracle* response that satisfies every instruction,
and responses that break exactly one instruction while keeping the answer readable.

A response is rendered from an answer plus optional extra lines (an explanation, filler) in a fixed order:
    title line <<...>>      (detectable_format:title)
    answer, extra lines
    blank line + P.S. ...   (detectable_content:postscript)
    end phrase              (startend:end_checker)
  then the whole is wrapped: JSON {"answer", "explanation"?} (json_format) or "..." (startend:quotation),
  then cased (change_case:*). number_words "at least N" adds correct filler sentences until N words are reached.
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any, Optional, Sequence

from nemotron_jax.data.toyworld.tasks import TaskItem
from nemotron_jax.sdg import instructions as registry

TOY_INSTRUCTIONS = (
    "change_case:english_capital",
    "change_case:english_lowercase",
    "startend:end_checker",
    "detectable_format:json_format",
    "length_constraints:number_words",
    "startend:quotation",
    "detectable_content:postscript",
    "punctuation:no_comma",
    "detectable_format:title",
)
_CASE = ("change_case:english_capital", "change_case:english_lowercase")
FILLER = ("I checked this answer twice.", "This is my final answer.", "I hope that this helps you.",
          "The question was clear to me.", "It took only one step.")
POSTSCRIPT_TEXT = "I hope this helps."
TITLE_TEXT = "My Answer"
_BREAK_LINE = {
    "change_case:english_capital": "that is my answer.",
    "change_case:english_lowercase": "That is my answer.",
    "detectable_format:json_format": "That is my answer.",
    "punctuation:no_comma": "Sure, that is my answer.",
}


@dataclasses.dataclass(frozen=True)
class ToyPrompt:
    """A task item under zero or more instructions; `text` is the user turn."""

    item: TaskItem
    instruction_id_list: tuple[str, ...] = ()
    kwargs: tuple[dict, ...] = ()

    @property
    def text(self) -> str:
        if not self.instruction_id_list:
            return self.item.prompt
        return self.item.prompt + " " + registry.describe(self.instruction_id_list, self.kwargs)

    def follows(self, response: str) -> list[bool]:
        """Per-instruction strict verdicts (the SDG verifiers)."""
        return registry.follows(self.instruction_id_list, self.kwargs, response) if self.instruction_id_list else []


def allowed_instructions(item: TaskItem) -> tuple[str, ...]:
    """Instructions that make sense for this item (no case change on case-sensitive answers, none on code)."""
    if item.function is not None:
        return ()
    return tuple(i for i in TOY_INSTRUCTIONS if not (item.case_sensitive and i in _CASE))


def _sample_kwargs(rng: random.Random, iid: str) -> dict:
    if iid == "length_constraints:number_words":
        return rng.choice(({"relation": "less than", "num_words": rng.choice((5, 10, 15))},
                           {"relation": "at least", "num_words": rng.choice((8, 12))}))
    return registry.get(iid).sample(rng)


def render(item_answer: str, extra: Sequence[str], ids: Sequence[str], kwargs: Sequence[dict], *,
           skip: Optional[str] = None) -> str:
    """The response giving `item_answer` (+ `extra` lines) formatted for every instruction except `skip`."""
    active = {i: kw for i, kw in zip(ids, kwargs) if i != skip}
    lines = list(extra)
    want = active.get("length_constraints:number_words")
    if want and want["relation"] == "at least":
        k = 0
        while registry.count_words(" ".join([item_answer, *lines, *_fixed_lines(active)])) < want["num_words"]:
            lines.append(FILLER[k % len(FILLER)])
            k += 1
    if "detectable_format:json_format" in active:
        obj: dict[str, Any] = {"answer": item_answer}
        if lines:
            obj["explanation"] = " ".join(lines)
        text = json.dumps(obj)
    else:
        body = [item_answer, *lines]
        if "detectable_format:title" in active:
            body = [f"<<{TITLE_TEXT}>>", *body]
        if "detectable_content:postscript" in active:
            body += ["", f"{active['detectable_content:postscript']['postscript_marker']} {POSTSCRIPT_TEXT}"]
        if "startend:end_checker" in active:
            body.append(active["startend:end_checker"]["end_phrase"])
        text = "\n".join(body)
        if "startend:quotation" in active:
            text = f'"{text}"'
    if "change_case:english_capital" in active:
        text = text.upper()
    if "change_case:english_lowercase" in active:
        text = text.lower()
    return text


def _fixed_lines(active: dict) -> list[str]:
    """Words the format itself adds (title, postscript, end phrase), counted toward 'at least N words'."""
    out = []
    if "detectable_format:title" in active:
        out.append(TITLE_TEXT)
    if "detectable_content:postscript" in active:
        out.append(POSTSCRIPT_TEXT)
    if "startend:end_checker" in active:
        out.append(active["startend:end_checker"]["end_phrase"])
    return out


def oracle_response(p: ToyPrompt, *, extra: Sequence[str] = ()) -> str:
    """The ideal response: the right answer, every instruction satisfied."""
    return render(p.item.answer, extra, p.instruction_id_list, p.kwargs)


def breaking_response(p: ToyPrompt, broken: str, *, answer: Optional[str] = None) -> str:
    """`answer` (default: the right one) with every instruction satisfied except `broken`, which the response
    visibly violates."""
    ids, kws = p.instruction_id_list, p.kwargs
    answer = p.item.answer if answer is None else answer
    text = render(answer, (), ids, kws, skip=broken)
    if not registry.get(broken).verify(text, kws[ids.index(broken)]):
        return text
    kw = kws[ids.index(broken)]
    if broken == "length_constraints:number_words":  # 'less than N': pad with correct sentences to N words
        extra = [p.item.explanation] if p.item.explanation and answer == p.item.answer else []
        k = 0
        while registry.count_words(render(answer, extra, ids, kws, skip=broken)) < kw["num_words"]:
            extra.append(FILLER[k % len(FILLER)])
            k += 1
        return render(answer, extra, ids, kws, skip=broken)
    line = _BREAK_LINE.get(broken, "That is my answer.")
    return render(answer, [line], ids, kws, skip=broken)


def make_prompt(item: TaskItem, rng: random.Random, *, n_instructions: int) -> ToyPrompt:
    """`item` under `n_instructions` compatible instructions whose oracle passes and whose breakers fail."""
    allowed = allowed_instructions(item)
    if n_instructions == 0 or not allowed:
        return ToyPrompt(item)
    for _ in range(100):
        ids, kws = [], []
        for iid in rng.sample(allowed, len(allowed)):
            if len(ids) == n_instructions:
                break
            if all(registry.compatible(iid, j) for j in ids):
                ids.append(iid)
                kws.append(_sample_kwargs(rng, iid))
        p = ToyPrompt(item, tuple(ids), tuple(kws))
        if len(ids) == n_instructions and _well_posed(p):
            return p
    raise ValueError(f"could not attach {n_instructions} instructions to item {item.id!r}")


def _well_posed(p: ToyPrompt) -> bool:
    """The oracle follows every instruction and keeps its answer; each breaker fails exactly its instruction."""
    oracle = oracle_response(p)
    if not all(p.follows(oracle)) or not p.item.check(oracle):
        return False
    for k, iid in enumerate(p.instruction_id_list):
        broken = breaking_response(p, iid)
        verdicts = p.follows(broken)
        if verdicts[k] or not p.item.check(broken) or not all(v for j, v in enumerate(verdicts) if j != k):
            return False
    return True
