"""From judged responses to training data: preference pairs (with rewards, for RPO) and best-response SFT rows.

A preference record: {"id", "prompt": [messages...], "chosen": str, "rejected": str, "chosen_reward": float,
"rejected_reward": float, "chosen_model", "rejected_model", "judge", "task", "provenance"}. `prompt` is the whole
conversation before the answer (a list of {"role", "content"}), so multi-turn prompts keep their context.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import ClassVar, Optional, Sequence

from nemotron_jax.sdg.stages import Context, Item, Stage, child, register

PAIRINGS = ("best_vs_worst", "all_pairs")


def _pair_record(item: Item, a: dict, b: dict) -> dict:
    return {"prompt": item["messages"], "chosen": a["text"], "rejected": b["text"],
            "chosen_reward": a["score"], "rejected_reward": b["score"], "chosen_model": a.get("model"),
            "rejected_model": b.get("model"), "judge": item.get("judge")}


def _passes(value: object) -> bool:
    """A judge verdict field passes when it is true, or (a list of verdicts) when every entry is true."""
    return all(value) if isinstance(value, (list, tuple)) else bool(value)


def candidate_pairs(item: Item, margin: float, strategy: str, same: Sequence[str] = (),
                    contrast: Sequence[str] = ()) -> list[tuple[int, int]]:
    """(chosen, rejected) response indices whose score gap is > 0 and >= margin, and (with `same`) whose
    responses agree on those judge fields: same=("correct",) pairs right with right and wrong with wrong, so the
    preference is about the rest (instructions, length), not the answer. With `contrast`, the chosen response
    passes those judge fields (every entry of a list) and the rejected one fails at least one: contrast=("followed",)
    makes a pair say "this reply follows every instruction, that one breaks one", not "this one is shorter".

    best_vs_worst: at most one pair, the top- vs the bottom-scored response (first index breaks ties).
    all_pairs: every ordered pair over the gap, largest gap first.
    LLM-judged items only pair what the judge ranked consistently (`consistent_pairs`).
    """
    rs = item["responses"]
    scores = [r["score"] for r in rs]
    allowed = {tuple(p) for p in item["consistent_pairs"]} if "consistent_pairs" in item else None
    pairs = [(i, j) for i, j in itertools.permutations(range(len(scores)), 2)
             if scores[i] - scores[j] > 0 and scores[i] - scores[j] >= margin
             and (allowed is None or (i, j) in allowed) and all(rs[i].get(f) == rs[j].get(f) for f in same)
             and all(_passes(rs[i][f]) and not _passes(rs[j][f]) for f in contrast)]
    pairs.sort(key=lambda p: (-(scores[p[0]] - scores[p[1]]), p))
    if strategy == "best_vs_worst":
        return pairs[:1]
    return pairs


@register
@dataclasses.dataclass
class Pairs(Stage):
    """Judged item -> preference records (see the module doc); items without a valid pair produce nothing."""

    type: ClassVar[str] = "pairs"
    strategy: str = "best_vs_worst"
    margin: float = 0.0
    max_pairs: Optional[int] = None
    same: tuple = ()  # judge fields both responses must share (see candidate_pairs)
    contrast: tuple = ()  # judge fields the chosen response passes and the rejected one fails (see candidate_pairs)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.strategy not in PAIRINGS:
            raise ValueError(f"pairs.strategy must be one of {PAIRINGS}, got {self.strategy!r}")

    def process(self, item: Item, ctx: Context) -> list[Item]:
        if not item.get("responses") or "score" not in item["responses"][0]:
            raise ValueError(f"item {item['id']}: pairs needs judged responses; put a judge_* stage before it")
        for option in ("same", "contrast"):
            missing = [f for f in getattr(self, option) if f not in item["responses"][0]]
            if missing:
                raise ValueError(f"item {item['id']}: pairs.{option} names {missing}, which its judge did not "
                                 f"record; fields present: {sorted(item['responses'][0])}")
        pairs = candidate_pairs(item, self.margin, self.strategy, tuple(self.same),
                                tuple(self.contrast))[: self.max_pairs]
        rs = item["responses"]
        base = {"task": item.get("task")}
        return [_record(item, j, self.name, {**base, **_pair_record(item, rs[a], rs[b])})
                for j, (a, b) in enumerate(pairs)]


@register
@dataclasses.dataclass
class BestResponse(Stage):
    """Judged item -> one SFT row {"messages": conversation + best response, "reward"} if its score >= min_score."""

    type: ClassVar[str] = "best_response"
    min_score: Optional[float] = None

    def process(self, item: Item, ctx: Context) -> list[Item]:
        rs = item.get("responses") or []
        if not rs or "score" not in rs[0]:
            raise ValueError(f"item {item['id']}: best_response needs judged responses; put a judge_* stage first")
        best = max(rs, key=lambda r: r["score"])
        if self.min_score is not None and best["score"] < self.min_score:
            return []
        msgs = list(item["messages"]) + [{"role": "assistant", "content": best["text"]}]
        return [_record(item, 0, self.name, {"messages": msgs, "reward": best["score"], "model": best.get("model"),
                                             "judge": item.get("judge"), "task": item.get("task")})]


_KEEP = ("instruction_ids", "instruction_kwargs", "answer")


def _record(item: Item, j: int, stage: str, fields: dict) -> Item:
    """A clean output row: the new fields, a few useful ones of the item, its provenance (not its responses)."""
    kept = {k: item[k] for k in _KEEP if k in item}
    row = child({"id": item["id"], "provenance": item.get("provenance", [])}, j, stage, {**kept, **fields},
                judge=item.get("judge"))
    return row
