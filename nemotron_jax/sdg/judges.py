"""Judges (SPEC §4): score each of an item's responses, recording which judge did it.

Applied in the paper's order of trust by chaining stages: a judge leaves items that an earlier judge already scored
(`item["judge"]` set) untouched, so `ground_truth -> verifier -> rm` uses ground truth where an answer is known,
verifiers where instructions are attached, and the reward model for everything else.

- ground_truth: 1.0 if the extracted final answer matches `item["answer"]`, else 0.0.
- verifier: fraction of the attached instructions followed (strict); `all_followed` per response.
- llm: pairwise, each pair asked in both orders; only consistent verdicts count. score = wins - losses, and the
  consistent (winner, loser) index pairs go to `consistent_pairs` for the pairing stage.
- rm: reward model's scalar (the reward route's, or the attributes re-aggregated with `weights`).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import ClassVar, Optional

from nemotron_jax.losses.reward import HELPSTEER_ATTRIBUTES, NEMOTRON4_340B_REWARD_WEIGHTS
from nemotron_jax.sdg import instructions as inst_lib
from nemotron_jax.sdg.parsing import answers_match, parse_verdict
from nemotron_jax.sdg.stages import Context, GenStage, Item, Stage, annotate, register, user



@dataclasses.dataclass
class Judge(Stage):
    """Base: scores an item's responses unless an earlier judge did (or `overwrite`)."""

    overwrite: bool = False

    def process(self, item: Item, ctx: Context) -> list[Item]:
        if not item.get("responses"):
            return [item]
        if (item.get("judge") and not self.overwrite) or not self.applies(item):
            return [item]
        return [self.judge(item, ctx)]

    def applies(self, item: Item) -> bool:
        return True

    def judge(self, item: Item, ctx: Context) -> Item:
        raise NotImplementedError

    def scored(self, item: Item, scores: list[float], extra: Optional[list[dict]] = None, *,
               model: Optional[str] = None, fields: Optional[dict] = None) -> Item:
        responses = [{**r, "score": float(s), **(extra[i] if extra else {})}
                     for i, (r, s) in enumerate(zip(item["responses"], scores))]
        return annotate(item, self.name, {"responses": responses, "judge": self.type, **(fields or {})},
                        model=model, judge=self.type)


@register
@dataclasses.dataclass
class GroundTruthJudge(Judge):
    """Answer extraction + comparison against `item[answer_field]` (math-like tasks)."""

    type: ClassVar[str] = "judge_ground_truth"
    answer_field: str = "answer"

    def applies(self, item: Item) -> bool:
        return item.get(self.answer_field) is not None

    def judge(self, item: Item, ctx: Context) -> Item:
        ref = str(item[self.answer_field])
        return self.scored(item, [float(answers_match(r["text"], ref)) for r in item["responses"]])


@register
@dataclasses.dataclass
class VerifierJudge(Judge):
    """The instruction verifiers of `instructions.py` on items that carry `instruction_ids`/`instruction_kwargs`."""

    type: ClassVar[str] = "judge_verifier"
    loose: bool = False

    def applies(self, item: Item) -> bool:
        return bool(item.get("instruction_ids"))

    def judge(self, item: Item, ctx: Context) -> Item:
        ids, kws = item["instruction_ids"], item["instruction_kwargs"]
        verdicts = [inst_lib.follows(ids, kws, r["text"], loose=self.loose) for r in item["responses"]]
        return self.scored(item, [sum(v) / len(v) for v in verdicts],
                           [{"followed": v, "all_followed": all(v)} for v in verdicts])


@register
@dataclasses.dataclass
class LLMJudge(Judge, GenStage):
    """Pairwise LLM-as-judge in both orders; inconsistent pairs are dropped (counted in ctx.stats)."""

    type: ClassVar[str] = "judge_llm"
    model: str = "judge"
    temperature: float = 0.0
    max_tokens: int = 512
    template: str = "llm_judge_pair"

    def judge(self, item: Item, ctx: Context) -> Item:
        question = _render_question(item["messages"])
        texts = [r["text"] for r in item["responses"]]
        wins = [0.0] * len(texts)
        pairs = []
        for i, j in itertools.combinations(range(len(texts)), 2):
            first = self._verdict(ctx, item, question, texts[i], texts[j], f"/{i}-{j}")
            second = self._verdict(ctx, item, question, texts[j], texts[i], f"/{j}-{i}")
            winner = _consistent_winner(first, second, i, j)
            if winner is None:
                ctx.stats.add("judge_inconsistent")
                continue
            loser = j if winner == i else i
            wins[winner] += 1.0
            wins[loser] -= 1.0
            pairs.append([winner, loser])
        return self.scored(item, wins, model=self.model, fields={"consistent_pairs": pairs})

    def _verdict(self, ctx: Context, item: Item, question: str, a: str, b: str, salt: str) -> Optional[str]:
        prompt = ctx.render(self.template, question=question, answer_a=a, answer_b=b)
        texts, _ = self.ask(ctx, item, user(prompt), salt=salt)
        verdict = parse_verdict(texts[0])
        if verdict is None:
            ctx.stats.add("judge_unparsed")
        return verdict


def _consistent_winner(first: Optional[str], second: Optional[str], i: int, j: int) -> Optional[int]:
    """First asked (A=i, B=j), then (A=j, B=i): i wins only on (A, B), j only on (B, A)."""
    if (first, second) == ("A", "B"):
        return i
    if (first, second) == ("B", "A"):
        return j
    return None


def _render_question(messages: list[dict]) -> str:
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


@register
@dataclasses.dataclass
class RMJudge(Judge):
    """Reward-model-as-judge: the reward of (conversation + response); attributes re-weighted when `weights` set.

    `weights` maps attribute names to weights, or "nemotron4_340b" for the 340B vector over HelpSteer attributes;
    None uses the scalar the reward route returns.
    """

    type: ClassVar[str] = "judge_rm"
    model: str = "reward"
    weights: Optional[dict | str] = None

    def judge(self, item: Item, ctx: Context) -> Item:
        client = ctx.model(self.model)
        scores, extra = [], []
        for r in item["responses"]:
            reward, attrs = client.reward(list(item["messages"]) + [{"role": "assistant", "content": r["text"]}])
            scores.append(self.aggregate(reward, attrs))
            extra.append({"attributes": attrs} if attrs else {})
        return self.scored(item, scores, extra, model=self.model)

    def aggregate(self, reward: float, attrs: dict) -> float:
        if self.weights is None:
            return float(reward)
        weights = (dict(zip(HELPSTEER_ATTRIBUTES, NEMOTRON4_340B_REWARD_WEIGHTS))
                   if self.weights == "nemotron4_340b" else dict(self.weights))
        missing = [a for a in weights if a not in attrs]
        if missing:
            raise KeyError(f"judge_rm weights need attributes {missing}, but the reward model returned "
                           f"{sorted(attrs)}; set weights=None to use its scalar reward")
        return float(sum(w * float(attrs[a]) for a, w in weights.items()))


@register
@dataclasses.dataclass
class ToyWorldJudge(Judge):
    """The toy world's own judgement (its answer checker + the instruction verifiers + HelpSteer rules, aggregated
    with the 340B weights) for items from the `toyworld` source (they carry `meta`)."""

    type: ClassVar[str] = "judge_toyworld"
    world_seed: int = 0

    def applies(self, item: Item) -> bool:
        return "meta" in item

    def judge(self, item: Item, ctx: Context) -> Item:
        from nemotron_jax.data.toyworld import ToyWorld

        verdicts = [ToyWorld.judge(item, r["text"]) for r in item["responses"]]
        extra = [{"correct": v["correct"], "followed": v["followed"], "coherent": v["coherent"]} for v in verdicts]
        return self.scored(item, [v["reward"] for v in verdicts], extra)


@register
@dataclasses.dataclass
class RMScore(Stage):
    """Reward of a whole conversation that ends in an assistant turn (e.g. a dialogue) -> `reward`; drop those
    under the threshold with a following `filter_reward` stage (field "reward"), as the paper does for dialogues."""

    type: ClassVar[str] = "rm_score"
    model: str = "reward"
    weights: Optional[dict | str] = None

    def process(self, item: Item, ctx: Context) -> list[Item]:
        msgs = item["messages"]
        if not msgs or msgs[-1]["role"] != "assistant":
            raise ValueError(f"item {item['id']}: rm_score needs messages ending in an assistant turn")
        reward, attrs = ctx.model(self.model).reward(list(msgs))
        score = RMJudge(weights=self.weights).aggregate(reward, attrs)
        return [annotate(item, self.name, {"reward": score, **({"attributes": attrs} if attrs else {})},
                         model=self.model, judge=self.type)]
