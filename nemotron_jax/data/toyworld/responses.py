"""Responses of known quality to toy prompts, their verifiable properties, and HelpSteer labels computed by rules.

Response kinds (what each is built to be):
    oracle              right answer, every instruction followed, as short as the instructions allow
    wrong_answer        a plausible wrong answer (a distractor), every instruction followed
    ignore_instruction  right answer, one instruction visibly broken (prompts with instructions only)
    ignore_instruction_wrong  the same with a wrong answer (so a missing format does not predict correctness)
    verbose             right answer and instructions, plus an explanation and filler (>= 10 words over the oracle)
    verbose_wrong       the same length and shape as `verbose` around a wrong answer (its explanation states the wrong
                        answer): without it, length alone would predict correctness in HelpSteer rows
    incoherent          a shuffled word salad of the answer and explanation (no readable answer line)

HelpSteer labels (0-4) come from *measured* properties (`Assessment`), never from the kind:
    correctness  4 if the checker accepts the answer, else 0
    coherence    4 if coherent, else 1
    verbosity    by words beyond the oracle's: 0 if empty, <=2 extra -> 1, <=8 -> 2, <=20 -> 3, more -> 4
    complexity   the task's difficulty (+1 when the prompt carries instructions), capped at 4
    helpfulness  0 if incoherent; else 4 if correct or 1 if wrong, minus ceil(2 * share of instructions broken),
                 minus 1 if verbosity >= 3; clipped to [0, 4]
The scalar reward is the Nemotron-4-340B-Reward weighted sum of the five (SPEC §3).
Coherence of a response the toy world did not write (SDG samples) is judged by `looks_coherent`.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from typing import Optional

from nemotron_jax.data.toyworld.instructions import (FILLER, ToyPrompt, breaking_response, oracle_response,
                                                     render)
from nemotron_jax.data.toyworld.tasks import extract_answer
from nemotron_jax.losses.reward import HELPSTEER_ATTRIBUTES, NEMOTRON4_340B_REWARD_WEIGHTS
from nemotron_jax.sdg.instructions import count_words

RESPONSE_KINDS = ("oracle", "wrong_answer", "ignore_instruction", "ignore_instruction_wrong", "verbose",
                  "verbose_wrong", "incoherent")
BREAKING_KINDS = ("ignore_instruction", "ignore_instruction_wrong")  # apply only to prompts with instructions


@dataclasses.dataclass(frozen=True)
class Response:
    text: str
    kind: str
    coherent: bool


@dataclasses.dataclass(frozen=True)
class Assessment:
    """The verifiable properties HelpSteer labels are computed from."""

    correct: bool
    followed: tuple[bool, ...]  # one verdict per instruction of the prompt
    coherent: bool
    n_words: int
    ideal_words: int  # words in the oracle response
    complexity: int


def make_response(p: ToyPrompt, kind: str, rng: random.Random) -> Optional[Response]:
    """A response of `kind` to `p`, or None where the kind does not apply (BREAKING_KINDS without instructions)."""
    item, ids, kws = p.item, p.instruction_id_list, p.kwargs
    if kind == "oracle":
        return Response(oracle_response(p), kind, True)
    if kind == "wrong_answer":
        return Response(render(rng.choice(item.distractors), (), ids, kws), kind, True)
    if kind in BREAKING_KINDS:
        if not ids:
            return None
        answer = item.answer if kind == "ignore_instruction" else rng.choice(item.distractors)
        return Response(breaking_response(p, rng.choice(ids), answer=answer), kind, True)
    if kind in ("verbose", "verbose_wrong"):
        answer = item.answer if kind == "verbose" else rng.choice(item.distractors)
        return Response(_verbose(p, answer, rng), kind, True)
    if kind == "incoherent":
        return Response(_word_salad(p, rng), kind, False)
    raise ValueError(f"unknown response kind {kind!r}; known kinds: {RESPONSE_KINDS}")


def _verbose(p: ToyPrompt, answer: str, rng: random.Random) -> str:
    """`answer` with its explanation (restating `answer`) and filler: >= 10 words over the oracle response."""
    item, ids, kws = p.item, p.instruction_id_list, p.kwargs
    explanation = _restate(item.explanation, item.answer, answer) if item.explanation else None
    extra = ([explanation] if explanation else []) + rng.sample(FILLER, rng.randint(2, 4))
    if item.function is not None:  # code: the explanation goes into comments
        return answer + "\n" + "\n".join(f"# {x}" for x in extra)
    floor = count_words(oracle_response(p)) + 10  # clearly longer than the ideal, even when it was padded
    k = 0
    while count_words(render(answer, extra, ids, kws)) < floor:
        extra.append(FILLER[k % len(FILLER)])
        k += 1
    return render(answer, extra, ids, kws)


def _restate(explanation: str, right: str, given: str) -> Optional[str]:
    """The explanation sentence made to state `given` instead of `right` (None when it does not name `right`)."""
    if given == right:
        return explanation
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(right)}(?![A-Za-z0-9])")
    return pattern.sub(given, explanation) if pattern.search(explanation) else None


def _word_salad(p: ToyPrompt, rng: random.Random) -> str:
    words = re.findall(r"\w+", " ".join([p.item.answer, p.item.explanation, rng.choice(FILLER)]).lower())
    words += rng.sample(words, min(3, len(words)))  # stutter: some words twice
    rng.shuffle(words)
    text = " ".join(words)
    return text if extract_answer(text) != p.item.answer else "the " + text


def assess(p: ToyPrompt, text: str, *, coherent: Optional[bool] = None) -> Assessment:
    """Measure a response: checker verdict, instruction verdicts, coherence, length against the oracle."""
    complexity = min(4, p.item.difficulty + (1 if p.instruction_id_list else 0))
    return Assessment(correct=p.item.check(text), followed=tuple(p.follows(text)),
                      coherent=looks_coherent(text) if coherent is None else coherent,
                      n_words=count_words(text), ideal_words=count_words(oracle_response(p)), complexity=complexity)


def looks_coherent(text: str) -> bool:
    """A readable response: a short answer line (<= 6 words) can be read and no word repeats 3 times in a row."""
    words = re.findall(r"\w+", text.lower())
    stutter = any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2))
    answer = extract_answer(text)
    return answer is not None and len(answer.split()) <= 6 and not stutter


def verbosity_label(n_words: int, ideal_words: int) -> int:
    """0 for an empty response, then 1..4 by words beyond the oracle's (<=2, <=8, <=20, more)."""
    if n_words == 0:
        return 0
    extra = n_words - ideal_words  # absolute, not a ratio: the ideal is often a single word
    return 1 if extra <= 2 else 2 if extra <= 8 else 3 if extra <= 20 else 4


def helpsteer_labels(a: Assessment) -> dict[str, int]:
    """The five HelpSteer attributes from an Assessment, by the rules in the module docstring."""
    verbosity = verbosity_label(a.n_words, a.ideal_words)
    broken = sum(not f for f in a.followed) / len(a.followed) if a.followed else 0.0
    if not a.coherent:
        helpfulness = 0
    else:
        helpfulness = (4 if a.correct else 1) - math.ceil(2 * broken) - (1 if verbosity >= 3 else 0)
    return {"helpfulness": max(0, min(4, helpfulness)), "correctness": 4 if a.correct else 0,
            "coherence": 4 if a.coherent else 1, "complexity": a.complexity, "verbosity": verbosity}


def scalar_reward(labels: dict[str, float], weights: tuple[float, ...] = NEMOTRON4_340B_REWARD_WEIGHTS) -> float:
    """The weighted sum of the five attributes (Nemotron-4-340B-Reward weights by default)."""
    return float(sum(w * labels[a] for a, w in zip(HELPSTEER_ATTRIBUTES, weights)))
