"""The generated world: people, places and objects with attributes, an invented lexicon, and the facts about them.

Everything is a pure function of the seed. Names are pronounceable syllable strings that collide with no English word
the templates use, so a fact can only be recalled, never guessed from the name.
"""

from __future__ import annotations

import dataclasses
import random

JOBS = ("baker", "farmer", "painter", "doctor", "sailor", "teacher", "miner", "weaver", "singer", "potter", "hunter",
        "tailor")
PETS = ("cat", "dog", "goat", "horse", "parrot", "rabbit", "owl", "frog", "mouse", "turtle")
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black")
REGIONS = ("north", "south", "east", "west")
CATEGORIES = ("tool", "fruit", "toy", "instrument", "drink", "cloth")
MATERIALS = ("wood", "stone", "glass", "metal", "clay", "wool")

# The relations a fact can have, and which entity kind they describe.
PERSON_RELATIONS = ("home", "job", "pet", "color", "owns")
PLACE_RELATIONS = ("region",)
OBJECT_RELATIONS = ("category", "material")

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kl", "tr", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "k", "m")


@dataclasses.dataclass(frozen=True)
class Fact:
    """One true statement: `subject` (an entity name) stands in `relation` to `value`."""

    subject: str
    relation: str
    value: str

    @property
    def key(self) -> str:
        return f"{self.subject}|{self.relation}"


@dataclasses.dataclass(frozen=True)
class Person:
    name: str
    home: str
    job: str
    pet: str
    color: str
    owns: str
    pronoun: str  # "she" | "he"


@dataclasses.dataclass(frozen=True)
class Place:
    name: str
    region: str


@dataclasses.dataclass(frozen=True)
class Thing:
    name: str
    category: str
    material: str


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def invent_words(rng: random.Random, n: int, *, syllables: tuple[int, int], avoid: set[str]) -> list[str]:
    """n distinct pronounceable lowercase words of 1..3 syllables, none of them in `avoid`."""
    out: list[str] = []
    seen = set(avoid)
    while len(out) < n:
        w = "".join(_syllable(rng) for _ in range(rng.randint(*syllables)))
        if 3 <= len(w) <= 9 and w not in seen:
            seen.add(w)
            out.append(w)
    return out


@dataclasses.dataclass(frozen=True)
class World:
    """All entities of one seeded world; `facts()` lists every true fact."""

    people: tuple[Person, ...]
    places: tuple[Place, ...]
    things: tuple[Thing, ...]

    def __post_init__(self) -> None:
        facts = [Fact(p.name, rel, getattr(p, rel)) for p in self.people for rel in PERSON_RELATIONS]
        facts += [Fact(pl.name, "region", pl.region) for pl in self.places]
        facts += [Fact(t.name, rel, getattr(t, rel)) for t in self.things for rel in OBJECT_RELATIONS]
        object.__setattr__(self, "_facts", tuple(facts))  # computed once: task sampling reads it per item

    def facts(self) -> tuple[Fact, ...]:
        """Every fact, people first, in a fixed order."""
        return self._facts  # type: ignore[attr-defined]

    def place(self, name: str) -> Place:
        return next(p for p in self.places if p.name == name)

    def thing(self, name: str) -> Thing:
        return next(t for t in self.things if t.name == name)

    def values_of(self, relation: str) -> tuple[str, ...]:
        """The possible values of a relation (the distractor pool for a question about it)."""
        return {"home": tuple(p.name for p in self.places), "job": JOBS, "pet": PETS, "color": COLORS,
                "owns": tuple(t.name for t in self.things), "region": REGIONS, "category": CATEGORIES,
                "material": MATERIALS}[relation]


def build_world(seed: int, *, n_people: int, n_places: int, n_things: int, avoid: set[str]) -> World:
    """Sample a world: places with regions, things with category/material, people with five attributes each."""
    rng = random.Random(f"toyworld:{seed}:world")
    names = invent_words(rng, n_people + n_places + n_things, syllables=(2, 3), avoid=avoid)
    person_names = [n.capitalize() for n in names[:n_people]]
    place_names = [n.capitalize() for n in names[n_people:n_people + n_places]]
    thing_names = names[n_people + n_places:]
    places = tuple(Place(n, REGIONS[i % len(REGIONS)] if i < len(REGIONS) else rng.choice(REGIONS))
                   for i, n in enumerate(place_names))
    things = tuple(Thing(n, rng.choice(CATEGORIES), rng.choice(MATERIALS)) for n in thing_names)
    people = tuple(Person(n, rng.choice(place_names), rng.choice(JOBS), rng.choice(PETS), rng.choice(COLORS),
                          rng.choice(thing_names), rng.choice(("she", "he")))
                   for n in person_names)
    return World(people, places, things)
