"""Filters: reward threshold, length bounds, exact and near-duplicate removal, disjoint SFT/preference splits.

Reward and length filters look at one item; dedup looks at the whole set (`per_item = False`) and keeps the first
occurrence in input order. Near duplicates: Jaccard similarity of word n-gram shingles >= threshold, found with
MinHash + LSH banding and then confirmed with the exact Jaccard (so LSH only narrows the search).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any, ClassVar, Optional

import numpy as np

from nemotron_jax.sdg.stages import Context, Item, Stage, register


def field_text(item: Item, field: str) -> str:
    """The text a filter measures: a string field, or the last message's content for a messages list."""
    value: Any = item
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    if value is None:
        raise KeyError(f"item {item.get('id')} has no field {field!r}")
    return str(value)


@register
@dataclasses.dataclass
class RewardFilter(Stage):
    """Keep items whose `field` (default chosen_reward) >= min_reward (and <= max_reward if set)."""

    type: ClassVar[str] = "filter_reward"
    field: str = "chosen_reward"
    min_reward: Optional[float] = None
    max_reward: Optional[float] = None

    def process(self, item: Item, ctx: Context) -> list[Item]:
        value = float(item[self.field])
        if self.min_reward is not None and value < self.min_reward:
            return []
        if self.max_reward is not None and value > self.max_reward:
            return []
        return [item]


@register
@dataclasses.dataclass
class LengthFilter(Stage):
    """Keep items whose `fields` all have between min and max words (and chars)."""

    type: ClassVar[str] = "filter_length"
    fields: tuple = ("prompt",)
    min_words: int = 0
    max_words: Optional[int] = None
    min_chars: int = 0
    max_chars: Optional[int] = None

    def process(self, item: Item, ctx: Context) -> list[Item]:
        for f in self.fields:
            text = field_text(item, f)
            words, chars = len(text.split()), len(text)
            if words < self.min_words or chars < self.min_chars:
                return []
            if (self.max_words is not None and words > self.max_words) or \
                    (self.max_chars is not None and chars > self.max_chars):
                return []
        return [item]


def normalize_text(text: str) -> str:
    """Lowercase, punctuation dropped, whitespace collapsed: 'Hello,  World!' -> 'hello world'."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def shingles(text: str, n: int) -> set[str]:
    """Word n-grams of the normalised text (the whole text if shorter than n words)."""
    words = normalize_text(text).split()
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


_MERSENNE = (1 << 61) - 1


def minhash(sh: set[str], num_perm: int, seed: int = 0) -> np.ndarray:
    """MinHash signature [num_perm] under random affine hashes mod a Mersenne prime."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _MERSENNE, num_perm, dtype=np.uint64).astype(object)
    b = rng.integers(0, _MERSENNE, num_perm, dtype=np.uint64).astype(object)
    if not sh:
        return np.zeros(num_perm, dtype=object)
    base = [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in sh]
    return np.array([min((ai * x + bi) % _MERSENNE for x in base) for ai, bi in zip(a, b)], dtype=object)


@register
@dataclasses.dataclass
class Dedup(Stage):
    """Drop exact duplicates (after normalisation) and, if near_threshold is set, near duplicates of `field`."""

    type: ClassVar[str] = "dedup"
    per_item: ClassVar[bool] = False
    field: str = "prompt"
    near_threshold: Optional[float] = 0.8
    ngram: int = 3
    num_perm: int = 64
    bands: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_perm % self.bands:
            raise ValueError(f"dedup: num_perm={self.num_perm} must be a multiple of bands={self.bands}")

    def process_all(self, items: list[Item], ctx: Context) -> list[Item]:
        seen: set[str] = set()
        kept: list[Item] = []
        kept_shingles: list[set[str]] = []
        buckets: dict[tuple, list[int]] = {}
        rows = self.num_perm // self.bands
        for item in items:
            text = field_text(item, self.field)
            key = normalize_text(text)
            if key in seen:
                ctx.stats.add("dedup_exact")
                continue
            sh = shingles(text, self.ngram)
            band_keys = []
            if self.near_threshold is not None:
                sig = minhash(sh, self.num_perm)
                band_keys = [(b, tuple(sig[b * rows:(b + 1) * rows])) for b in range(self.bands)]
                candidates = {k for bk in band_keys for k in buckets.get(bk, [])}
                if any(jaccard(sh, kept_shingles[k]) >= self.near_threshold for k in sorted(candidates)):
                    ctx.stats.add("dedup_near")
                    continue
            seen.add(key)
            for bk in band_keys:
                buckets.setdefault(bk, []).append(len(kept))
            kept.append(item)
            kept_shingles.append(sh)
        return kept


SPLITS = ("sft", "preference")


def split_of(item_id: str, sft_share: float) -> str:
    """'sft' or 'preference', fixed by a hash of the id: pipelines over one source get disjoint prompt sets."""
    u = int(hashlib.sha256(f"split/{item_id}".encode()).hexdigest()[:12], 16) / float(1 << 48)
    return "sft" if u < sft_share else "preference"


@register
@dataclasses.dataclass
class SelectSplit(Stage):
    """Keep this pipeline's share of real prompts (e.g. LMSYS): the SFT or the preference split, disjoint by id.

    Prompts flagged unsafe (`unsafe_field` truthy) are dropped from the SFT split only, as in the paper.
    """

    type: ClassVar[str] = "select_split"
    split: str = "sft"
    sft_share: float = 0.5
    unsafe_field: Optional[str] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split not in SPLITS or not 0.0 <= self.sft_share <= 1.0:
            raise ValueError(f"select_split needs split in {SPLITS} and 0 <= sft_share <= 1, got {self.split!r}, "
                             f"{self.sft_share}")

    def process(self, item: Item, ctx: Context) -> list[Item]:
        if split_of(item["id"], self.sft_share) != self.split:
            return []
        if self.split == "sft" and self.unsafe_field and item.get(self.unsafe_field):
            ctx.stats.add("unsafe_dropped")
            return []
        return [{**item, "split": self.split}]
