"""Tasks with verifiable answers: each item is a prompt, a reference answer, distractors and a checker.

Every item has a stable id (`task/key`); its split is a hash of (seed, id), so the held-out split is disjoint from
the training split by construction and the same for every caller. Answers are one line with no spaces (code-writing
answers excepted), which is what keeps the tasks learnable by a 2-4 layer model and makes checking exact.

Answer checking (`extract_answer` + `TaskItem.check`): the answer is read from a response by undoing the formats the
toy instructions produce, in this order: a JSON object -> its "answer" field; else a leading `<<title>>` line is
dropped, surrounding double quotes are stripped, and the first non-empty line is the answer (a trailing period is
ignored). It matches the reference exactly, ignoring case unless the task is case sensitive. So "7\\nI added 3 and
4." is correct (verbose), "The answer is 7." is not.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
import re
from typing import Callable, Optional

from nemotron_jax.data.toyworld import programs
from nemotron_jax.data.toyworld.text import ENGLISH_TEMPLATES, QUESTIONS
from nemotron_jax.data.toyworld.world import CATEGORIES, COLORS, JOBS, MATERIALS, PETS, REGIONS, World

EXTRA_WORDS = ("apple", "banana", "bridge", "candle", "castle", "cloud", "dragon", "flower", "forest", "garden",
               "hammer", "island", "jacket", "kettle", "ladder", "lemon", "market", "mirror", "monkey", "orange",
               "pencil", "pepper", "pillow", "planet", "rabbit", "rocket", "saddle", "silver", "spoon", "summer",
               "table", "tiger", "tomato", "violin", "wagon", "window", "winter", "yellow", "zebra", "basket",
               "anchor", "beach", "blanket", "bottle", "butter", "camera", "carpet", "cherry", "circle", "copper",
               "cotton", "desert", "dinner", "doctor", "engine", "feather", "finger", "garlic", "guitar", "helmet",
               "honey", "insect", "jungle", "kitten", "letter", "lizard", "magnet", "meadow", "needle", "noodle",
               "ocean", "paper", "parrot", "peanut", "pirate", "pocket", "puzzle", "rain", "ribbon", "river",
               "robot", "salad", "shadow", "sister", "socket", "spider", "sugar", "tunnel", "turkey", "velvet")

LEARNABLE_TASKS = ("fact_recall", "letter_count", "uppercase", "reverse", "sum_1digit")
HARD_TASKS = ("sum_2digit", "program_trace")
CODE_TASKS = ("program_trace", "code_write")
ALL_TASKS = LEARNABLE_TASKS + ("sum_2digit", "program_trace", "code_write")


@dataclasses.dataclass(frozen=True)
class TaskItem:
    """One task instance. `check(response)` says whether a response gives the right answer."""

    task: str
    id: str
    prompt: str
    answer: str
    explanation: str  # one correct sentence without commas; verbose responses add it after the answer
    distractors: tuple[str, ...]  # plausible wrong answers
    difficulty: int  # 0..4, the HelpSteer complexity of the task
    case_sensitive: bool = False
    split: str = "train"
    function: Optional[programs.FunctionTask] = None  # code_write items: the exercise whose tests decide

    def check(self, response: str) -> bool:
        """Whether `response` answers this item correctly (see the module docstring for the reading rules)."""
        if self.function is not None:
            return programs.passes_tests(response, self.function)
        got = extract_answer(response)
        if got is None:
            return False
        return got == self.answer if self.case_sensitive else got.lower() == self.answer.lower()


def extract_answer(response: str) -> Optional[str]:
    """The answer a response gives: JSON "answer" field, else the first line after an optional <<title>> line."""
    text = programs.strip_code_fence(response).strip()
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        vals = [v for k, v in obj.items() if str(k).lower() == "answer"]
        return str(vals[0]).strip() if vals else None
    if isinstance(obj, (int, float, str)) and not isinstance(obj, bool):
        return str(obj).strip()
    text = text.strip('"').strip()
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if lines and re.fullmatch(r"<<[^\n]+>>", lines[0]):
        lines = lines[1:]
    if not lines:
        return None
    first = lines[0].strip('"').strip()
    return first[:-1] if first.endswith(".") and len(first) > 1 else first


def split_of(seed: int, item_id: str, heldout_fraction: float) -> str:
    """'heldout' for a seeded hash share `heldout_fraction` of ids, else 'train' (stable across runs and machines)."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{item_id}".encode()).digest()[:8], "big") / 2.0**64
    return "heldout" if h < heldout_fraction else "train"


@functools.lru_cache(maxsize=16)
def word_pool(world: World) -> tuple[str, ...]:
    """The words string tasks draw from: common words plus the world's invented object names."""
    words = JOBS + PETS + COLORS + REGIONS + CATEGORIES + MATERIALS + EXTRA_WORDS + tuple(t.name for t in world.things)
    return tuple(sorted(set(w for w in words if 3 <= len(w) <= 9)))


@functools.lru_cache(maxsize=16)
def _repeating_words(world: World) -> tuple[str, ...]:
    return tuple(w for w in word_pool(world) if len(set(w)) < len(w))


def _numeric_distractors(n: int) -> tuple[str, ...]:
    return tuple(str(v) for v in (n + 1, n - 1, n + 2, n + 10) if v >= 0 and v != n)[:3]


def _fact_item(world: World, rng: random.Random, key: Optional[tuple] = None) -> TaskItem:
    f = key[0] if key else rng.choice(world.facts())
    pool = [v for v in world.values_of(f.relation) if v != f.value]
    explanation = ENGLISH_TEMPLATES[f.relation][0].format(s=f.subject, v=f.value)
    return TaskItem("fact_recall", f"fact_recall/{f.key}", QUESTIONS[f.relation].format(s=f.subject), f.value,
                    explanation[0].upper() + explanation[1:], tuple(rng.sample(pool, min(3, len(pool)))), 1)


def _letter_count_item(world: World, rng: random.Random, key: Optional[tuple] = None) -> TaskItem:
    if key:
        w, c = key
    else:  # answers 0, 1 and 2+ equally often: most letters occur once, so "1" alone would score ~2/3
        bucket = rng.randrange(3)
        w = rng.choice(_repeating_words(world) if bucket == 2 else word_pool(world))
        if bucket == 0:
            c = rng.choice([x for x in "abcdefghijklmnopqrstuvwxyz" if x not in w])
        else:
            c = rng.choice(sorted(x for x in set(w) if (w.count(x) > 1) == (bucket == 2)) or sorted(w))
    n = w.count(c)
    return TaskItem("letter_count", f"letter_count/{w}/{c}", f"How many times does the letter {c} appear in {w}?",
                    str(n), f"The letter {c} appears {n} {'time' if n == 1 else 'times'} in {w}.",
                    _numeric_distractors(n), 1)


def _uppercase_item(world: World, rng: random.Random, key: Optional[tuple] = None) -> TaskItem:
    w = key[0] if key else rng.choice(word_pool(world))
    wrong = (w, w.capitalize(), w[:-1].upper() + w[-1])
    return TaskItem("uppercase", f"uppercase/{w}", f"Write {w} in capital letters.", w.upper(),
                    f"Every letter of {w} becomes a capital letter.", wrong, 1, case_sensitive=True)


def _reverse_item(world: World, rng: random.Random, key: Optional[tuple] = None) -> TaskItem:
    w = key[0] if key else rng.choice(word_pool(world))
    r = w[::-1]
    swapped = r[1] + r[0] + r[2:]
    wrong = tuple(x for x in dict.fromkeys((w, swapped, r[:-1], r + r[-1])) if x.lower() != r)
    return TaskItem("reverse", f"reverse/{w}", f"Write the word {w} backwards.", r,
                    f"Reading {w} from the last letter to the first gives {r}.", wrong, 1)


def _sum_item(lo: int, hi: int, task: str, difficulty: int) -> Callable[..., TaskItem]:
    def make(world: World, rng: random.Random, key: Optional[tuple] = None) -> TaskItem:
        a, b = key if key else (rng.randint(lo, hi), rng.randint(lo, hi))
        return TaskItem(task, f"{task}/{a}+{b}", f"What is {a} + {b}?", str(a + b),
                        f"Adding {a} and {b} gives {a + b}.", _numeric_distractors(a + b), difficulty)
    return make


def _trace_item(world: World, rng: random.Random) -> TaskItem:
    src, out = programs.make_program(rng)
    if re.fullmatch(r"-?\d+", out):
        wrong = _numeric_distractors(abs(int(out))) if int(out) >= 0 else (str(int(out) + 1), str(int(out) - 1))
    else:
        wrong = tuple(x for x in dict.fromkeys((out[::-1], out.swapcase(), out + "s")) if x != out)
    return TaskItem("program_trace", "program_trace/" + src.replace("\n", "\\n"),
                    f"What does this Python program print?\n{src}", out, f"Running the program prints {out}.", wrong,
                    3, case_sensitive=True)


def _code_write_item(world: World, rng: random.Random) -> TaskItem:
    t = programs.make_function_task(rng)
    arg = t.prompt.split("(")[1].split(")")[0]
    prompt = f"Write a Python function named {t.entry_point} that takes {arg}. {t.description}"
    wrong = (t.prompt.split('    """')[0] + f"    return {arg}\n",)
    return TaskItem("code_write", f"code_write/{t.entry_point}/{hashlib.sha256(t.test.encode()).hexdigest()[:10]}",
                    prompt, t.solution, "", wrong, 3, case_sensitive=True, function=t)


TASK_MAKERS: dict[str, Callable[..., TaskItem]] = {
    "fact_recall": _fact_item,
    "letter_count": _letter_count_item,
    "uppercase": _uppercase_item,
    "reverse": _reverse_item,
    "sum_1digit": _sum_item(0, 9, "sum_1digit", 0),
    "sum_2digit": _sum_item(10, 99, "sum_2digit", 2),
    "program_trace": _trace_item,
    "code_write": _code_write_item,
}


def sample_items(world: World, task: str, n: int, *, split: str, seed: int, heldout_fraction: float,
                 stream: str, unique: bool = False) -> list[TaskItem]:
    """n items of `task` from `split`; with unique=True at most one per id (fewer if the split runs out)."""
    if task not in TASK_MAKERS:
        raise ValueError(f"unknown toy task {task!r}; known tasks: {sorted(TASK_MAKERS)}")
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    rng = random.Random(f"toyworld:{seed}:{task}:{split}:{stream}")
    out: list[TaskItem] = []
    seen: set[str] = set()
    misses = 0  # draws in a row that gave nothing new: a long run means the split is exhausted
    while len(out) < n and misses < 3000:
        item = TASK_MAKERS[task](world, rng)
        if split_of(seed, item.id, heldout_fraction) != split or (unique and item.id in seen):
            misses += 1
            continue
        misses = 0
        seen.add(item.id)
        out.append(dataclasses.replace(item, split=split))
    if not out and n > 0:
        raise ValueError(f"task {task!r} has no {split} items (heldout_fraction={heldout_fraction}); "
                         f"use a fraction strictly between 0 and 1")
    return out


# Every key of the finite tasks (used for quiz sheets over the whole training split).
TASK_KEYS: dict[str, Callable[[World], list[tuple]]] = {
    "fact_recall": lambda world: [(f,) for f in world.facts()],
    "letter_count": lambda world: [(w, c) for w in word_pool(world) for c in sorted(set(w))],
    "uppercase": lambda world: [(w,) for w in word_pool(world)],
    "reverse": lambda world: [(w,) for w in word_pool(world)],
    "sum_1digit": lambda world: [(a, b) for a in range(10) for b in range(10)],
}


def all_items(world: World, task: str, *, split: str, seed: int, heldout_fraction: float) -> list[TaskItem]:
    """Every item of a finite task in one split, in a fixed order."""
    if task not in TASK_KEYS:
        raise ValueError(f"task {task!r} is not finite; enumerable tasks: {sorted(TASK_KEYS)}")
    rng = random.Random(f"toyworld:{seed}:{task}:all")
    items = (TASK_MAKERS[task](world, rng, key) for key in TASK_KEYS[task](world))
    return [dataclasses.replace(it, split=split) for it in items
            if split_of(seed, it.id, heldout_fraction) == split]
