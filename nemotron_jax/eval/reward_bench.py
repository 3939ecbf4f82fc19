"""Reward-model accuracy on RewardBench-shaped pairs: per subset, per category, overall.

A pair is right when r(prompt, chosen) > r(prompt, rejected); a tie counts half. Category scores follow
RewardBench: subset accuracies weighted by subset size, except that `math-prm` is weighted as heavily as all the
`hep-*` code subsets together (RewardBench up-weights it to balance math against code). Overall = mean of the
four categories (Chat, Chat-Hard, Safety, Reasoning); "prior-sets" is reported but, as in the paper, not averaged.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from nemotron_jax.eval.io import DatasetError, load_jsonl, require_keys

CATEGORIES = {
    "chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "chat-hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
    "prior-sets": ("anthropic_helpful", "anthropic_harmless", "anthropic_hhh", "shp", "summarize", "mtbench_gpt4",
                   "mtbench_human"),
}
MAIN_CATEGORIES = ("chat", "chat-hard", "safety", "reasoning")
SUBSET_TO_CATEGORY = {s: c for c, subsets in CATEGORIES.items() for s in subsets}


class RewardScorer(Protocol):
    """(prompts, responses) -> one scalar reward per pair (a BT score or an aggregated regression score)."""

    def reward(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


class ModelRewardScorer:
    """In-process reward model (`model/heads.py`): attributes aggregated with `weights` (None: the 340B vector)."""

    def __init__(self, params: Any, cfg: Any, tokenizer: Any, weights: Optional[Sequence[float]] = None) -> None:
        self.params, self.cfg, self.tokenizer, self.weights = params, cfg, tokenizer, weights

    def reward(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        from nemotron_jax.model.heads import score_conversations

        out = score_conversations(self.params, self.cfg, self.tokenizer, prompts, responses, weights=self.weights)
        return np.asarray(out["reward"], np.float64)


@dataclasses.dataclass(frozen=True)
class RewardPair:
    prompt: str
    chosen: str
    rejected: str
    subset: str
    category: str


def parse_rewardbench(obj: dict[str, Any], where: str) -> RewardPair:
    """{"prompt", "chosen", "rejected", "subset"} (or an explicit "category" for subsets outside RewardBench)."""
    require_keys(obj, ("prompt", "chosen", "rejected"), where)
    subset = str(obj.get("subset", obj.get("category", "")))
    category = obj.get("category") or SUBSET_TO_CATEGORY.get(subset)
    if not category:
        raise DatasetError(f"{where}: subset {subset!r} is not a RewardBench subset; add a \"category\" field "
                           f"(one of {MAIN_CATEGORIES}) or use a known subset")
    for k in ("prompt", "chosen", "rejected"):
        if not isinstance(obj[k], str):
            raise DatasetError(f"{where}: {k} must be a string")
    return RewardPair(obj["prompt"], obj["chosen"], obj["rejected"], subset or category, str(category))


def load_rewardbench(path: str | Path) -> list[RewardPair]:
    return load_jsonl(path, parse_rewardbench)


def _subset_weights(counts: dict[str, int]) -> dict[str, float]:
    """Example counts, with math-prm lifted to the combined size of the hep-* subsets present."""
    weights = {s: float(n) for s, n in counts.items()}
    hep = sum(n for s, n in counts.items() if s.startswith("hep-"))
    if "math-prm" in weights and hep:
        weights["math-prm"] = float(hep)
    return weights


def score_pairs(pairs: Sequence[RewardPair], r_chosen: np.ndarray, r_rejected: np.ndarray) -> dict[str, Any]:
    """Accuracy per subset and category, and the overall RewardBench score."""
    r_chosen, r_rejected = np.asarray(r_chosen, np.float64), np.asarray(r_rejected, np.float64)
    right = np.where(r_chosen > r_rejected, 1.0, np.where(r_chosen == r_rejected, 0.5, 0.0))
    by_subset: dict[str, list[float]] = defaultdict(list)
    cat_of = {}
    for p, ok in zip(pairs, right):
        by_subset[p.subset].append(ok)
        cat_of[p.subset] = p.category
    subset_acc = {s: float(np.mean(v)) for s, v in sorted(by_subset.items())}
    per_category = {}
    for cat in sorted(set(cat_of.values())):
        subs = [s for s in subset_acc if cat_of[s] == cat]
        w = _subset_weights({s: len(by_subset[s]) for s in subs})
        per_category[cat] = sum(subset_acc[s] * w[s] for s in subs) / sum(w.values())
    main = [per_category[c] for c in per_category if c != "prior-sets"]
    return {"overall": float(np.mean(main)) if main else float("nan"), "per_category": per_category,
            "per_subset": subset_acc, "n": len(pairs), "pair_accuracy": float(np.mean(right)),
            "predictions": [{"subset": p.subset, "chosen": float(a), "rejected": float(b)}
                            for p, a, b in zip(pairs, r_chosen, r_rejected)]}


def evaluate_reward_model(scorer: RewardScorer, pairs: Sequence[RewardPair]) -> dict[str, Any]:
    """Score every chosen and rejected response in one call (the scorer batches), then compare."""
    prompts = [p.prompt for p in pairs]
    r = np.asarray(scorer.reward(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs]))
    return score_pairs(pairs, r[:len(pairs)], r[len(pairs):])
