"""Natural-language documents about the world: English-like text and the invented language "Lingo".

English documents render facts with several paraphrase templates (varied wording and sentence order is what lets a
small model extract a fact it read in a biography when asked in a new form). Lingo renders the same facts with its
own lexicon and grammar: subject-object-verb order, postpositions, modifiers after nouns, numbers as invented words.
"""

from __future__ import annotations

import random
import re
from typing import Optional

from nemotron_jax.data.toyworld.world import (CATEGORIES, COLORS, JOBS, MATERIALS, PERSON_RELATIONS, PETS, REGIONS,
                                              Fact, Person, World, invent_words)

ENGLISH_TEMPLATES: dict[str, tuple[str, ...]] = {
    "home": ("{s} lives in {v}.", "{s} has a home in {v}.", "The home of {s} is in {v}.",
             "{s} grew up in {v} and still lives there."),
    "job": ("{s} works as a {v}.", "{s} is a {v}.", "By trade {s} is a {v}.", "Every day {s} goes to work as a {v}."),
    "pet": ("{s} has a pet {v}.", "{s} keeps a {v} as a pet.", "The pet of {s} is a {v}."),
    "color": ("The favorite color of {s} is {v}.", "{s} likes the color {v} best.", "{s} loves everything {v}."),
    "owns": ("{s} owns a {v}.", "{s} carries a {v} everywhere.", "A {v} belongs to {s}."),
    "region": ("{s} is a town in the {v}.", "The town of {s} lies in the {v}.", "{s} is in the {v} of the land."),
    "category": ("A {s} is a kind of {v}.", "The {s} is a {v}.", "Everyone knows that a {s} is a {v}."),
    "material": ("A {s} is made of {v}.", "Every {s} is made from {v}.", "The {s} is built out of {v}."),
}

# Chat questions whose one-word answer is the fact's value (used by the fact-recall task and the Q&A documents).
QUESTIONS: dict[str, str] = {
    "home": "Where does {s} live?",
    "job": "What is the job of {s}?",
    "pet": "What pet does {s} have?",
    "color": "What is the favorite color of {s}?",
    "owns": "What does {s} own?",
    "region": "In which part of the land is {s}?",
    "category": "What kind of thing is a {s}?",
    "material": "What is a {s} made of?",
}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen")

# Lingo: (concept words that need a Lingo word) and its templates; `{L[x]}` is the Lingo word for English x.
_LINGO_CONCEPTS = ("in", "live", "home", "is", "work", "as", "do", "pet", "have", "color", "love", "town", "kind",
                   "from", "make", "and", "plus", "equal", "word", "letter", "back") + JOBS + PETS + COLORS + \
    REGIONS + CATEGORIES + MATERIALS + NUMBER_WORDS
LINGO_TEMPLATES: dict[str, tuple[str, ...]] = {
    "home": ("{s} {v} {L[in]} {L[live]}.", "{s} {L[home]} {v} {L[in]} {L[is]}."),
    "job": ("{s} {V} {L[is]}.", "{s} {V} {L[as]} {L[work]} {L[do]}."),
    "pet": ("{s} {L[pet]} {V} {L[have]}.", "{s} {V} {L[pet]} {L[as]} {L[have]}."),
    "color": ("{s} {L[color]} {V} {L[love]}.", "{s} {V} {L[love]}."),
    "owns": ("{s} {v} {L[have]}.", "{v} {s} {L[from]} {L[is]}."),
    "region": ("{s} {L[town]} {V} {L[in]} {L[is]}.", "{s} {V} {L[in]} {L[is]}."),
    "category": ("{s} {V} {L[kind]} {L[is]}.", "{s} {V} {L[is]}."),
    "material": ("{s} {V} {L[from]} {L[make]}.", "{s} {V} {L[is]}."),
}


def _sentence(template: str, fact: Fact, subject: str, lexicon: Optional[dict[str, str]] = None) -> str:
    value_word = lexicon.get(fact.value, fact.value) if lexicon else fact.value
    text = template.format(s=subject, v=fact.value, V=value_word, L=lexicon or {})
    return text[0].upper() + text[1:]


def english_fact(rng: random.Random, fact: Fact, *, pronoun: Optional[str] = None) -> str:
    """One English sentence stating `fact`; with `pronoun`, templates that open with the subject may use it."""
    template = rng.choice(ENGLISH_TEMPLATES[fact.relation])
    subject = pronoun if pronoun and template.startswith("{s} ") else fact.subject
    return _sentence(template, fact, subject)


def person_facts(p: Person) -> list[Fact]:
    return [Fact(p.name, rel, getattr(p, rel)) for rel in PERSON_RELATIONS]


def english_biography(rng: random.Random, world: World, p: Person) -> str:
    """A paragraph about one person: all five facts, shuffled, later sentences often by pronoun."""
    facts = person_facts(p)
    rng.shuffle(facts)
    out = [english_fact(rng, facts[0])]
    out += [english_fact(rng, f, pronoun=p.pronoun if rng.random() < 0.5 else None) for f in facts[1:]]
    return " ".join(out)


def english_place_page(rng: random.Random, world: World, place_index: int) -> str:
    """A paragraph about a town: its region and who lives there."""
    pl = world.places[place_index]
    out = [english_fact(rng, Fact(pl.name, "region", pl.region))]
    residents = [p.name for p in world.people if p.home == pl.name]
    rng.shuffle(residents)
    if residents:
        listed = residents[:4]
        names = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
        out.append(f"{names} {'lives' if len(listed) == 1 else 'live'} in {pl.name}.")
    return " ".join(out)


def english_thing_page(rng: random.Random, world: World, thing_index: int) -> str:
    """A paragraph about an object kind: what it is, what it is made of, who owns one."""
    t = world.things[thing_index]
    facts = [Fact(t.name, "category", t.category), Fact(t.name, "material", t.material)]
    rng.shuffle(facts)
    out = [english_fact(rng, f) for f in facts]
    owners = [p.name for p in world.people if p.owns == t.name]
    if owners:
        out.append(english_fact(rng, Fact(rng.choice(owners), "owns", t.name)))
    return " ".join(out)


def english_qa(pairs: list[tuple[str, str]]) -> str:
    """A quiz sheet: one "Q: question / A: answer" block per pair."""
    return "\n".join(f"Q: {q}\nA: {a}" for q, a in pairs)


def english_exercises(rng: random.Random, words: tuple[str, ...], n: int) -> str:
    """A practice sheet of arithmetic and spelling facts (sums, letter counts, reversal, capitals)."""
    out = []
    for _ in range(n):
        kind = rng.randrange(5)
        w = rng.choice(words)
        if kind == 0:
            a, b = rng.randrange(10), rng.randrange(10)
            out.append(rng.choice((f"{a} + {b} = {a + b}.", f"{NUMBER_WORDS[a].capitalize()} plus {NUMBER_WORDS[b]} "
                                   f"is {NUMBER_WORDS[a + b]}.", f"The sum of {a} and {b} is {a + b}.")))
        elif kind == 1:
            c = rng.choice(w)
            out.append(f"The letter {c} appears {w.count(c)} {'time' if w.count(c) == 1 else 'times'} in {w}.")
        elif kind == 2:
            out.append(rng.choice((f"The word {w} reversed is {w[::-1]}.", f"Written backwards {w} is {w[::-1]}.")))
        elif kind == 3:
            out.append(rng.choice((f"In capital letters {w} is {w.upper()}.", f"{w} in upper case is {w.upper()}.")))
        else:
            out.append(f"The word {w} has {len(w)} letters: {' '.join(w)}.")
    return " ".join(out)


def make_lexicon(seed: int, avoid: set[str]) -> dict[str, str]:
    """English concept word -> Lingo word (a bijection fixed by the seed)."""
    rng = random.Random(f"toyworld:{seed}:lingo")
    return dict(zip(_LINGO_CONCEPTS, invent_words(rng, len(_LINGO_CONCEPTS), syllables=(1, 2), avoid=avoid)))


def lingo_fact(rng: random.Random, fact: Fact, lexicon: dict[str, str]) -> str:
    """One Lingo sentence stating `fact` (subject-object-verb, postpositions)."""
    return _sentence(rng.choice(LINGO_TEMPLATES[fact.relation]), fact, fact.subject, lexicon)


def lingo_biography(rng: random.Random, world: World, p: Person, lexicon: dict[str, str]) -> str:
    facts = person_facts(p)
    rng.shuffle(facts)
    return " ".join(lingo_fact(rng, f, lexicon) for f in facts)


def lingo_exercises(rng: random.Random, lexicon: dict[str, str], n: int) -> str:
    """Sums written in Lingo number words: 'A B plus C equal' order (numbers first, operator last)."""
    num = lambda k: lexicon[NUMBER_WORDS[k]]  # noqa: E731
    out = []
    for _ in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        text = f"{num(a)} {num(b)} {lexicon['plus']} {num(a + b)} {lexicon['equal']}."
        out.append(text[0].upper() + text[1:])
    return " ".join(out)


def english_vocabulary() -> set[str]:
    """Every lowercase word the English templates, questions and practice sheets can use (invented words avoid it)."""
    texts = [t for ts in ENGLISH_TEMPLATES.values() for t in ts] + list(QUESTIONS.values()) + list(NUMBER_WORDS)
    texts += ["the letter appears time times in word reversed is written backwards capital letters upper case has",
              "plus sum of and live lives", " ".join(_LINGO_CONCEPTS)]
    return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}
