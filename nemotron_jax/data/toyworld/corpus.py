"""The pretraining corpus: English, Lingo and Python documents blended by characters like the paper's 70/15/15.

Blending is deterministic deficit scheduling: the next document comes from the source furthest below its target
share of the characters produced so far, so any prefix of the stream is within one document of the target blend.

English documents: biographies (all five facts of a person, several paraphrases over the corpus), town and object
pages, practice sheets (sums, spelling, reversal, capitals, letter counts) that state the knowledge of *every* item,
and quiz sheets: "Q: <task prompt> / A: <answer>" lines over the *training split* of the learnable tasks only, so a
held-out question never appears verbatim. Stating all knowledge while asking about part of it is the mix that lets a
model answer questions about the rest (knowledge extraction needs QA-format exposure during pretraining).
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


def english_document(rng: random.Random, world: World, words: tuple[str, ...], quiz: list[tuple[str, str]]) -> str:
    """One English document of a randomly chosen kind (biographies 40%, pages 20%, quiz 20%, practice 20%)."""
    r = rng.random()
    if r < 0.4:
        return text.english_biography(rng, world, rng.choice(world.people))
    if r < 0.5:
        return text.english_place_page(rng, world, rng.randrange(len(world.places)))
    if r < 0.6:
        return text.english_thing_page(rng, world, rng.randrange(len(world.things)))
    if r < 0.8 and quiz:
        return text.english_qa(rng, quiz, rng.randint(3, 6))
    return text.english_exercises(rng, words, rng.randint(4, 8))


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
              n_chars: int, blend: Mapping[str, float] = DEFAULT_BLEND, stream: str = "pretrain"
              ) -> Iterator[dict[str, str]]:
    """Yield {"text", "source"} documents until `n_chars` characters, blended by characters as `blend` says."""
    shares = check_blend(blend)
    quiz = [(it.prompt, it.answer) for task in LEARNABLE_TASKS
            for it in all_items(world, task, split="train", seed=seed, heldout_fraction=heldout_fraction)]
    rngs = {s: random.Random(f"toyworld:{seed}:corpus:{stream}:{s}") for s in shares}
    makers = {
        "english": lambda r: english_document(r, world, words, quiz),
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
