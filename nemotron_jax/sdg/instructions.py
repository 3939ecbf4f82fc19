"""IFEval-style verifiable instructions: a registry of types, each with kwargs, a description and a verifier.

An instruction type is data (`Instruction`): its IFEval id (e.g. `detectable_format:json_format`), the kwargs it
takes, `describe(kwargs) -> str` (the text appended to a prompt), `verify(response, kwargs) -> bool` and
`sample(rng) -> kwargs` (feasible random kwargs for prompt generation). IFEval's "loose" check is `verify_loose`:
the instruction counts as followed if any of eight relaxed variants of the response passes (first and/or last line
removed, asterisks stripped).

    >>> inst = get("punctuation:no_comma")
    >>> inst.verify("No commas here.", {})
    True
    >>> follows(["change_case:english_lowercase", "startend:end_checker"],
    ...         [{}, {"end_phrase": "Any other questions?"}], "hi. any other questions?")
    [True, True]

`language:response_language` uses langdetect (as IFEval does) and fails with an install hint without it; it is not
in `sample_instructions`' default pool. Unlike IFEval, the case instructions do not also ask langdetect for English.

Relations follow IFEval: "less than" means count < N, "at least" means count >= N; "at most" and "exactly" are
accepted too. kwargs with value None are ignored (the public IFEval files pad every kwargs dict with nulls).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
import re
import string
from typing import Any, Callable, Mapping, Optional, Sequence

Kwargs = Mapping[str, Any]

RELATIONS = {
    "less than": lambda n, k: n < k,
    "at least": lambda n, k: n >= k,
    "at most": lambda n, k: n <= k,
    "exactly": lambda n, k: n == k,
}


class InstructionError(ValueError):
    """Unknown instruction id or kwargs an instruction cannot use; the message names the id and the fix."""


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One verifiable instruction type."""

    id: str
    required: tuple[str, ...]
    describe_fn: Callable[[dict], str]
    verify_fn: Callable[[str, dict], bool]
    sample_fn: Callable[[random.Random], dict]
    conflicts: frozenset[str] = frozenset()  # ids that cannot be combined with this one in one prompt
    optional: tuple[str, ...] = ()
    requires: Optional[str] = None  # an optional package the verifier needs
    sampleable: bool = True  # offered by sample_instructions' default pool

    def clean(self, kwargs: Optional[Kwargs]) -> dict:
        """kwargs without nulls, checked against what this instruction takes."""
        if self.requires and importlib.util.find_spec(self.requires) is None:
            raise InstructionError(f"instruction {self.id!r} needs the {self.requires} package: "
                                   f"pip install {self.requires}")
        kw = {k: v for k, v in (kwargs or {}).items() if v is not None}
        missing = [k for k in self.required if k not in kw]
        if missing:
            raise InstructionError(f"instruction {self.id!r} needs kwargs {missing}; got {sorted(kw)}")
        unknown = [k for k in kw if k not in self.required and k not in self.optional]
        if unknown:
            raise InstructionError(f"instruction {self.id!r} does not take kwargs {unknown}; it takes "
                                   f"{list(self.required) + list(self.optional)}")
        if "relation" in kw and kw["relation"] not in RELATIONS:
            raise InstructionError(f"instruction {self.id!r}: relation {kw['relation']!r} is not one of "
                                   f"{sorted(RELATIONS)}")
        return kw

    def describe(self, kwargs: Optional[Kwargs] = None) -> str:
        """The instruction text to append to a prompt."""
        return self.describe_fn(self.clean(kwargs))

    def verify(self, response: str, kwargs: Optional[Kwargs] = None) -> bool:
        """Strict check: does `response` follow the instruction?"""
        return bool(response.strip()) and bool(self.verify_fn(response, self.clean(kwargs)))

    def verify_loose(self, response: str, kwargs: Optional[Kwargs] = None) -> bool:
        """IFEval's loose check: any relaxed variant of the response passes."""
        kw = self.clean(kwargs)
        return any(v.strip() and self.verify_fn(v, kw) for v in loose_variants(response))

    def sample(self, rng: random.Random) -> dict:
        """Random feasible kwargs for this instruction."""
        return self.sample_fn(rng)


def loose_variants(response: str) -> list[str]:
    """IFEval's eight relaxed responses: {as is, '*' removed} x {all, no first line, no last line, neither}."""
    out = []
    for text in (response, response.replace("*", "")):
        lines = text.split("\n")
        out += [text, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Text measurements (shared by several verifiers)
# ---------------------------------------------------------------------------------------------------------------

_ABBREVIATIONS = ("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd", "no")


def count_words(text: str) -> int:
    """Words as runs of word characters (IFEval's `\\w+` tokenizer)."""
    return len(re.findall(r"\w+", text))


def split_sentences(text: str) -> list[str]:
    """Sentences ending in . ! ? (runs allowed), not splitting after common abbreviations or single initials."""
    pieces, start = [], 0
    for m in re.finditer(r"[.!?]+(?=\s|$)", text):
        before = text[start:m.start()].split()
        last = before[-1].lower().rstrip(".") if before else ""
        if m.group() == "." and (last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())):
            continue
        pieces.append(text[start:m.end()])
        start = m.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip() and re.search(r"\w", p)]


def count_sentences(text: str) -> int:
    """Number of sentences (see `split_sentences`)."""
    return len(split_sentences(text))


def _compare(n: int, kw: dict, key: str) -> bool:
    return RELATIONS[kw["relation"]](n, int(kw[key]))


def _relation_text(relation: str, n: int, noun: str) -> str:
    return {"less than": f"less than {n} {noun}", "at least": f"at least {n} {noun}",
            "at most": f"at most {n} {noun}", "exactly": f"exactly {n} {noun}"}[relation]


def _strip_code_fence(text: str) -> str:
    text = text.strip()
    text = re.sub(r"^```[A-Za-z]*\s*\n?", "", text)
    return re.sub(r"\n?```$", "", text).strip()


def _paragraphs_stars(text: str) -> Optional[list[str]]:
    """Paragraphs separated by the markdown divider ***; None if an inner paragraph is empty."""
    parts = re.split(r"\s?\*\*\*\s?", text)
    for i, p in enumerate(parts):
        if not p.strip() and 0 < i < len(parts) - 1:
            return None
    return [p for p in parts if p.strip()]


def _paragraphs_blank(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _bullets(text: str) -> list[str]:
    return re.findall(r"^\s*\*[^\*].*$", text, flags=re.M) + re.findall(r"^\s*-.*$", text, flags=re.M)


def _highlights(text: str) -> int:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", text) if h.strip("*").strip()]
    return len(single) + len(double)


def _marker_pattern(marker: str) -> str:
    """'P.P.S' -> a pattern that also accepts 'p. p. s' (spaces after the dots), lower case."""
    return r"\s*" + r"\.\s?".join(re.escape(part) for part in marker.lower().split(".")) + r".*$"


def _first_word(paragraph: str) -> str:
    words = paragraph.strip().split()
    return words[0].strip(string.punctuation + "“”‘’").lower() if words else ""


# ---------------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------------

REGISTRY: dict[str, Instruction] = {}

_WORDS = ("data", "river", "light", "future", "garden", "planet", "music", "energy", "history", "story", "ocean",
          "science", "travel", "coffee", "winter", "market", "network", "balance", "journey", "memory")
_PHRASES = ("Is there anything else I can help with?", "Let me know if you have additional questions.",
            "Any other questions?", "That is all.")
_STARTS = ("Sure", "Here is my answer", "In short", "To begin")
_YES_NO = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
_CASE = frozenset({"change_case:english_capital", "change_case:english_lowercase", "change_case:capital_word_frequency"})


def _register(inst: Instruction) -> Instruction:
    if inst.id in REGISTRY:
        raise InstructionError(f"instruction {inst.id!r} registered twice")
    REGISTRY[inst.id] = inst
    return inst


def _rel(rng: random.Random) -> str:
    return rng.choice(("less than", "at least"))


_register(Instruction(
    "change_case:english_capital", (),
    lambda kw: "Your entire response should be in English, and in all capital letters.",
    lambda r, kw: r.isupper(),
    lambda rng: {},
    conflicts=_CASE | {"startend:end_checker", "startend:start_checker", "keywords:letter_frequency"}))
_register(Instruction(
    "change_case:english_lowercase", (),
    lambda kw: "Your entire response should be in English, and in all lowercase letters. No capital letters "
               "are allowed.",
    lambda r, kw: r.islower(),
    lambda rng: {},
    conflicts=_CASE | {"detectable_format:title", "startend:start_checker", "startend:end_checker",
                       "detectable_content:postscript", "detectable_format:constrained_response"}))
_register(Instruction(
    "change_case:capital_word_frequency", ("capital_frequency", "capital_relation"),
    lambda kw: f"In your response, words with all capital letters should appear "
               f"{_relation_text(kw['capital_relation'], int(kw['capital_frequency']), 'times')}.",
    lambda r, kw: RELATIONS[kw["capital_relation"]](
        sum(1 for w in re.findall(r"\b[^\W\d_]+\b", r) if w.isupper()), int(kw["capital_frequency"])),
    lambda rng: {"capital_frequency": rng.randint(1, 4), "capital_relation": _rel(rng)},
    conflicts=_CASE))
_register(Instruction(
    "length_constraints:number_words", ("num_words", "relation"),
    lambda kw: f"Answer with {_relation_text(kw['relation'], int(kw['num_words']), 'words')}.",
    lambda r, kw: _compare(count_words(r), kw, "num_words"),
    lambda rng: {"num_words": rng.choice((10, 20, 30, 50, 100)), "relation": _rel(rng)},
    conflicts=frozenset({"length_constraints:number_words"})))
_register(Instruction(
    "length_constraints:number_sentences", ("num_sentences", "relation"),
    lambda kw: f"Your response should contain {_relation_text(kw['relation'], int(kw['num_sentences']), 'sentences')}.",
    lambda r, kw: _compare(count_sentences(r), kw, "num_sentences"),
    lambda rng: {"num_sentences": rng.randint(1, 5), "relation": _rel(rng)}))
_register(Instruction(
    "length_constraints:number_paragraphs", ("num_paragraphs",),
    lambda kw: f"There should be {int(kw['num_paragraphs'])} paragraphs. Paragraphs are separated with the "
               f"markdown divider: ***",
    lambda r, kw: (p := _paragraphs_stars(r)) is not None and len(p) == int(kw["num_paragraphs"]),
    lambda rng: {"num_paragraphs": rng.randint(2, 4)},
    conflicts=frozenset({"length_constraints:nth_paragraph_first_word", "detectable_format:multiple_sections"})))
_register(Instruction(
    "length_constraints:nth_paragraph_first_word", ("num_paragraphs", "nth_paragraph", "first_word"),
    lambda kw: f"There should be {int(kw['num_paragraphs'])} paragraphs. Paragraphs and only paragraphs are "
               f"separated with each other by two new lines as if it was '\\n\\n' in python. Paragraph "
               f"{int(kw['nth_paragraph'])} must start with word {kw['first_word']}.",
    lambda r, kw: (len(p := _paragraphs_blank(r)) == int(kw["num_paragraphs"])
                   and 1 <= int(kw["nth_paragraph"]) <= len(p)
                   and _first_word(p[int(kw["nth_paragraph"]) - 1]) == str(kw["first_word"]).lower()),
    lambda rng: (lambda n: {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n),
                            "first_word": rng.choice(_WORDS)})(rng.randint(2, 4)),
    conflicts=frozenset({"length_constraints:number_paragraphs"})))
_register(Instruction(
    "detectable_content:number_placeholders", ("num_placeholders",),
    lambda kw: f"The response must contain at least {int(kw['num_placeholders'])} placeholders represented by "
               f"square brackets, such as [address].",
    lambda r, kw: len(re.findall(r"\[.*?\]", r)) >= int(kw["num_placeholders"]),
    lambda rng: {"num_placeholders": rng.randint(1, 3)}))
_register(Instruction(
    "detectable_content:postscript", ("postscript_marker",),
    lambda kw: f"At the end of your response, please explicitly add a postscript starting with "
               f"{kw['postscript_marker']}",
    lambda r, kw: re.search(_marker_pattern(str(kw["postscript_marker"])), r.lower(), flags=re.M) is not None,
    lambda rng: {"postscript_marker": rng.choice(("P.S.", "P.P.S"))},
    conflicts=frozenset({"startend:end_checker"})))
_register(Instruction(
    "detectable_format:number_bullet_lists", ("num_bullets",),
    lambda kw: f"Your answer must contain exactly {int(kw['num_bullets'])} bullet points. Use the markdown "
               f"bullet points such as:\n* This is point 1.\n* This is point 2",
    lambda r, kw: len(_bullets(r)) == int(kw["num_bullets"]),
    lambda rng: {"num_bullets": rng.randint(2, 5)}))
_register(Instruction(
    "detectable_format:constrained_response", (),
    lambda kw: "Answer with one of the following options: (\"My answer is yes.\", \"My answer is no.\", "
               "\"My answer is maybe.\")",
    lambda r, kw: any(opt in r.strip() for opt in _YES_NO),
    lambda rng: {},
    conflicts=frozenset({"change_case:english_capital", "change_case:english_lowercase",
                         "detectable_format:json_format"})))
_register(Instruction(
    "detectable_format:number_highlighted_sections", ("num_highlights",),
    lambda kw: f"Highlight at least {int(kw['num_highlights'])} sections in your answer with markdown, i.e. "
               f"*highlighted section*.",
    lambda r, kw: _highlights(r) >= int(kw["num_highlights"]),
    lambda rng: {"num_highlights": rng.randint(1, 3)}))
_register(Instruction(
    "detectable_format:multiple_sections", ("section_spliter", "num_sections"),
    lambda kw: f"Your response must have {int(kw['num_sections'])} sections. Mark the beginning of each section "
               f"with {kw['section_spliter']} X, such as: {kw['section_spliter']} 1",
    lambda r, kw: len(re.split(r"\s?" + re.escape(str(kw["section_spliter"])) + r"\s?\d+\s?", r)) - 1
    >= int(kw["num_sections"]),
    lambda rng: {"section_spliter": rng.choice(("Section", "SECTION", "Part")), "num_sections": rng.randint(2, 4)},
    conflicts=frozenset({"length_constraints:number_paragraphs"})))
_register(Instruction(
    "detectable_format:json_format", (),
    lambda kw: "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
    lambda r, kw: _is_json(_strip_code_fence(r)),
    lambda rng: {},
    conflicts=frozenset({"startend:end_checker", "startend:start_checker", "startend:quotation",
                         "detectable_format:title", "detectable_content:postscript", "combination:two_responses",
                         "combination:repeat_prompt", "punctuation:no_comma", "length_constraints:number_sentences",
                         "length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word",
                         "detectable_format:number_bullet_lists", "detectable_format:multiple_sections",
                         "detectable_format:constrained_response", "detectable_format:number_highlighted_sections"})))
_register(Instruction(
    "detectable_format:title", (),
    lambda kw: "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
    lambda r, kw: any(t.strip() for t in re.findall(r"<<([^\n]+?)>>", r)),
    lambda rng: {}))
_register(Instruction(
    "combination:two_responses", (),
    lambda kw: "Give two different responses. Responses and only responses should be separated by 6 asterisk "
               "symbols: ******.",
    lambda r, kw: _two_responses(r),
    lambda rng: {},
    conflicts=frozenset({"detectable_format:json_format", "startend:quotation",
                         "length_constraints:number_paragraphs"})))
_register(Instruction(
    "combination:repeat_prompt", ("prompt_to_repeat",),
    lambda kw: "First repeat the request word for word without change, then give your answer (1. do not say "
               "any words or characters before repeating the request; 2. the request you need to repeat does "
               "not include this sentence)",
    lambda r, kw: r.strip().lower().startswith(str(kw["prompt_to_repeat"]).strip().lower()),
    lambda rng: {"prompt_to_repeat": "Write a short note about " + rng.choice(_WORDS) + "."},
    conflicts=frozenset({"startend:start_checker", "startend:quotation", "change_case:english_capital",
                         "change_case:english_lowercase"})))
_register(Instruction(
    "startend:end_checker", ("end_phrase",),
    lambda kw: f"Finish your response with this exact phrase {kw['end_phrase']}. No other words should follow "
               f"this phrase.",
    lambda r, kw: r.strip().lower().endswith(str(kw["end_phrase"]).strip().lower()),
    lambda rng: {"end_phrase": rng.choice(_PHRASES)},
    conflicts=frozenset({"startend:quotation", "detectable_content:postscript"})))
_register(Instruction(  # not an IFEval id: the start-phrase mirror of end_checker
    "startend:start_checker", ("start_phrase",),
    lambda kw: f"Begin your response with this exact phrase: {kw['start_phrase']}",
    lambda r, kw: r.strip().lower().startswith(str(kw["start_phrase"]).strip().lower()),
    lambda rng: {"start_phrase": rng.choice(_STARTS)},
    conflicts=frozenset({"startend:quotation", "combination:repeat_prompt"})))
_register(Instruction(
    "startend:quotation", (),
    lambda kw: "Wrap your entire response with double quotation marks.",
    lambda r, kw: len(s := r.strip()) > 1 and s[0] == '"' and s[-1] == '"',
    lambda rng: {},
    conflicts=frozenset({"startend:end_checker", "startend:start_checker", "combination:repeat_prompt",
                         "detectable_content:postscript"})))
_register(Instruction(
    "language:response_language", ("language",),
    lambda kw: f"Your ENTIRE response should be in {_LANGUAGES.get(kw['language'], kw['language'])} language, no "
               f"other language is allowed.",
    lambda r, kw: _in_language(r, str(kw["language"])),
    lambda rng: {"language": rng.choice(("fr", "de", "es", "it", "pt"))},
    requires="langdetect", sampleable=False))
_register(Instruction(
    "punctuation:no_comma", (),
    lambda kw: "In your entire response, refrain from the use of any commas.",
    lambda r, kw: "," not in r,
    lambda rng: {}))
_register(Instruction(
    "keywords:existence", ("keywords",),
    lambda kw: f"Include keywords {', '.join(map(str, kw['keywords']))} in the response.",
    lambda r, kw: all(re.search(re.escape(str(k)), r, flags=re.I) for k in kw["keywords"]),
    lambda rng: {"keywords": rng.sample(_WORDS, rng.randint(1, 2))}))
_register(Instruction(
    "keywords:frequency", ("keyword", "frequency", "relation"),
    lambda kw: f"In your response, the word {kw['keyword']} should appear "
               f"{_relation_text(kw['relation'], int(kw['frequency']), 'times')}.",
    lambda r, kw: _compare(len(re.findall(re.escape(str(kw["keyword"])), r, flags=re.I)), kw, "frequency"),
    lambda rng: {"keyword": rng.choice(_WORDS), "frequency": rng.randint(1, 3), "relation": _rel(rng)}))
_register(Instruction(
    "keywords:forbidden_words", ("forbidden_words",),
    lambda kw: f"Do not include keywords {', '.join(map(str, kw['forbidden_words']))} in the response.",
    lambda r, kw: not any(re.search(r"\b" + re.escape(str(w)) + r"\b", r, flags=re.I)
                          for w in kw["forbidden_words"]),
    lambda rng: {"forbidden_words": rng.sample(_WORDS, rng.randint(1, 3))}))
_register(Instruction(
    "keywords:letter_frequency", ("letter", "let_frequency", "let_relation"),
    lambda kw: f"In your response, the letter {kw['letter']} should appear "
               f"{_relation_text(kw['let_relation'], int(kw['let_frequency']), 'times')}.",
    lambda r, kw: RELATIONS[kw["let_relation"]](r.lower().count(str(kw["letter"]).lower()), int(kw["let_frequency"])),
    lambda rng: {"letter": rng.choice(string.ascii_lowercase), "let_frequency": rng.randint(1, 6),
                 "let_relation": _rel(rng)}))


def _two_responses(text: str) -> bool:
    """Exactly two different non-empty parts around '******' (empty parts only allowed at either end)."""
    parts = text.split("******")
    if any(not p.strip() for p in parts[1:-1]):
        return False
    kept = [p.strip() for p in parts if p.strip()]
    return len(kept) == 2 and kept[0] != kept[1]


_LANGUAGES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
              "ru": "Russian", "zh-cn": "Chinese", "ja": "Japanese", "ko": "Korean", "ar": "Arabic", "hi": "Hindi",
              "fi": "Finnish", "vi": "Vietnamese", "sw": "Swahili", "bn": "Bengali", "fa": "Persian", "th": "Thai",
              "bg": "Bulgarian", "ta": "Tamil", "te": "Telugu", "mr": "Marathi", "gu": "Gujarati", "kn": "Kannada",
              "pa": "Punjabi", "ur": "Urdu", "ne": "Nepali"}


def _in_language(text: str, language: str) -> bool:
    """langdetect's verdict, seeded for determinism; text it cannot classify passes, as in IFEval."""
    import langdetect

    langdetect.DetectorFactory.seed = 0
    try:
        return langdetect.detect(text) == language
    except langdetect.LangDetectException:
        return True


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# Public helpers
# ---------------------------------------------------------------------------------------------------------------

def get(instruction_id: str) -> Instruction:
    """The registered instruction with this id."""
    try:
        return REGISTRY[instruction_id]
    except KeyError:
        raise InstructionError(f"unknown instruction id {instruction_id!r}; known ids: {sorted(REGISTRY)}") from None


def ids() -> list[str]:
    """All registered instruction ids, sorted."""
    return sorted(REGISTRY)


def describe(instruction_ids: Sequence[str], kwargs_list: Sequence[Optional[Kwargs]]) -> str:
    """The instruction texts of several instructions, one sentence after another."""
    _check_lengths(instruction_ids, kwargs_list)
    return " ".join(get(i).describe(kw) for i, kw in zip(instruction_ids, kwargs_list))


def follows(instruction_ids: Sequence[str], kwargs_list: Sequence[Optional[Kwargs]], response: str, *,
            loose: bool = False) -> list[bool]:
    """Per-instruction verdicts for one response (strict, or IFEval-loose with loose=True)."""
    _check_lengths(instruction_ids, kwargs_list)
    check = (lambda inst, kw: inst.verify_loose(response, kw)) if loose else (lambda inst, kw: inst.verify(response, kw))
    return [check(get(i), kw) for i, kw in zip(instruction_ids, kwargs_list)]


def compatible(a: str, b: str) -> bool:
    """Whether instructions a and b can be asked of one response (neither lists the other as a conflict)."""
    return a != b and b not in get(a).conflicts and a not in get(b).conflicts


def sample_instructions(rng: random.Random, k: int, *, allowed: Optional[Sequence[str]] = None,
                        prompt: Optional[str] = None) -> tuple[list[str], list[dict]]:
    """k mutually compatible instructions with random kwargs (repeat_prompt repeats `prompt` when given)."""
    pool = sorted(allowed) if allowed is not None else [i for i in ids() if REGISTRY[i].sampleable]
    for i in pool:
        get(i)
    chosen: list[str] = []
    for i in rng.sample(pool, len(pool)):
        if len(chosen) == k:
            break
        if all(compatible(i, c) for c in chosen):
            chosen.append(i)
    if len(chosen) < k:
        raise InstructionError(f"cannot pick {k} mutually compatible instructions from {pool}")
    kwargs = [get(i).sample(rng) for i in chosen]
    for i, kw in zip(chosen, kwargs):
        if i == "combination:repeat_prompt" and prompt is not None:
            kw["prompt_to_repeat"] = prompt
    return chosen, kwargs


def _check_lengths(instruction_ids: Sequence[str], kwargs_list: Sequence[Any]) -> None:
    if len(instruction_ids) != len(kwargs_list):
        raise InstructionError(f"{len(instruction_ids)} instruction ids but {len(kwargs_list)} kwargs dicts; "
                               f"give one kwargs dict (possibly empty) per instruction")
