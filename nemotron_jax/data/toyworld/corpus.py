"""The pretraining corpus: English, Lingo and Python documents blended by characters like the paper's 70/15/15.

Blending is deterministic deficit scheduling: the next document comes from the source furthest below its target
share of the characters produced so far, so any prefix of the stream is within one document of the target blend.

English documents: biographies (all five facts of a person, several paraphrases over the corpus), town and object
pages, practice sheets (sums, spelling, reversal, capitals, letter counts) that state the knowledge of *every* item,
and quiz sheets: "Q: <task prompt> / A: <answer>" lines over the *training split* of the learnable tasks only (each
line from a uniformly drawn task, so the many letter-count items do not crowd out the rest), so a held-out question
never appears verbatim; optionally also chat-format conversations (3-6 exchanges) over the same training items
(the "small share of QA-style alignment examples" of continued pretraining). Stating all knowledge while asking
about part of it is the mix that lets a model answer questions about the rest: the recipe's 2-layer base answers
35-50% of held-out fact questions on quiz sheets, and with the conversations it meets the chat template before
SFT. `ENGLISH_MIX` gives each kind's share of English documents.
Lingo documents: biographies and sums in the invented language. Code documents: traced programs and small functions.
"""

from __future__ import annotations

import random
from typing import Iterator, Mapping

from nemotron_jax.data.toyworld import programs, text
from nemotron_jax.data.toyworld.tasks import LEARNABLE_TASKS, all_items
from nemotron_jax.data.toyworld.world import World

SOURCES = ("english", "lingo", "code")
DEFAULT_BLEND = {"english": 0.70, "lingo": 0.15, "code": 0.15}
ENGLISH_KINDS = ("biography", "place", "thing", "quiz", "practice", "chat_qa")
ENGLISH_MIX = {"biography": 0.4, "place": 0.1, "thing": 0.1, "quiz": 0.2, "practice": 0.2, "chat_qa": 0.0}

Quiz = dict[str, list[tuple[str, str]]]  # task -> (question, answer) over its training split


def english_document(rng: random.Random, world: World, words: tuple[str, ...], quiz: Quiz,
                     mix: Mapping[str, float] = ENGLISH_MIX) -> str:
    """One English document, its kind drawn with the probabilities of `mix` (see ENGLISH_KINDS)."""
    kinds = [k for k in ENGLISH_KINDS if mix.get(k, 0) > 0 and (quiz or k not in ("quiz", "chat_qa"))]
    kind = rng.choices(kinds, weights=[mix[k] for k in kinds])[0]
    if kind == "biography":
        return text.english_biography(rng, world, rng.choice(world.people))
    if kind == "place":
        return text.english_place_page(rng, world, rng.randrange(len(world.places)))
    if kind == "thing":
        return text.english_thing_page(rng, world, rng.randrange(len(world.things)))
    if kind == "quiz":
        return text.english_qa(_balanced_draw(rng, quiz, rng.randint(3, 6)))
    if kind == "chat_qa":
        from nemotron_jax.data.chat import render_chat

        turns = [{"role": role, "content": text} for pair in _balanced_draw(rng, quiz, rng.randint(3, 6))
                 for role, text in zip(("user", "assistant"), pair)]
        return render_chat(turns)
    return text.english_exercises(rng, words, rng.randint(4, 8))


def _balanced_draw(rng: random.Random, quiz: Quiz, n: int) -> list[tuple[str, str]]:
    """n distinct (question, answer) pairs, each from a uniformly drawn task."""
    out: list[tuple[str, str]] = []
    tasks = sorted(quiz)
    while len(out) < min(n, sum(map(len, quiz.values()))):
        pair = rng.choice(quiz[rng.choice(tasks)])
        if pair not in out:
            out.append(pair)
    return out


def check_english_mix(mix: Mapping[str, float]) -> dict[str, float]:
    """Validate an English document mix {kind: weight}; returns it with every kind present."""
    unknown = set(mix) - set(ENGLISH_KINDS)
    if unknown or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"english mix must give non-negative weights (positive sum) to kinds of {ENGLISH_KINDS}, "
                         f"got {dict(mix)}")
    return {k: float(mix.get(k, 0.0)) for k in ENGLISH_KINDS}


def lingo_document(rng: random.Random, world: World, lexicon: dict[str, str]) -> str:
    """One Lingo document: a biography or a sheet of sums."""
    if rng.random() < 0.75:
        return text.lingo_biography(rng, world, rng.choice(world.people), lexicon)
    return text.lingo_exercises(rng, lexicon, rng.randint(4, 8))


def check_blend(blend: Mapping[str, float]) -> dict[str, float]:
    """Validate a blend {source: weight}; returns it normalised to sum 1."""
    unknown = set(blend) - set(SOURCES)
    if unknown or not blend:
        raise ValueError(f"blend sources must be a non-empty subset of {SOURCES}, got {sorted(blend)}")
    if any(w < 0 for w in blend.values()) or sum(blend.values()) <= 0:
        raise ValueError(f"blend weights must be non-negative with a positive sum, got {dict(blend)}")
    total = sum(blend.values())
    return {k: v / total for k, v in blend.items() if v > 0}


def documents(world: World, *, seed: int, lexicon: dict[str, str], words: tuple[str, ...], heldout_fraction: float,
              n_chars: int, blend: Mapping[str, float] = DEFAULT_BLEND, stream: str = "pretrain",
              english_mix: Mapping[str, float] = ENGLISH_MIX) -> Iterator[dict[str, str]]:
    """Yield {"text", "source"} documents until `n_chars` characters, blended by characters as `blend` says."""
    shares = check_blend(blend)
    mix = check_english_mix(english_mix)
    quiz = {task: [(it.prompt, it.answer) for it in
                   all_items(world, task, split="train", seed=seed, heldout_fraction=heldout_fraction)]
            for task in LEARNABLE_TASKS}
    quiz = {t: v for t, v in quiz.items() if v}
    rngs = {s: random.Random(f"toyworld:{seed}:corpus:{stream}:{s}") for s in shares}
    makers = {
        "english": lambda r: english_document(r, world, words, quiz, mix),
        "lingo": lambda r: lingo_document(r, world, lexicon),
        "code": lambda r: programs.code_document(r, r.randint(2, 4)),
    }
    made = {s: 0 for s in shares}
    total = 0
    while total < n_chars:
        source = max(shares, key=lambda s: shares[s] * (total + 1) - made[s])
        doc = makers[source](rngs[source])
        made[source] += len(doc)
        total += len(doc)
        yield {"text": doc, "source": source}
