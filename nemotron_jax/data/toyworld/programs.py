"""Small Python programs: generators for traceable programs and tiny function-writing exercises, and a runner.

Every program prints exactly one line with no spaces, so "what does it print?" has a one-word answer. Outputs are
obtained by running the generated source (never by a second hand-written evaluator that could drift from Python).
Functions are HumanEval-shaped: a signature with docstring, a canonical body, and a `check(candidate)` test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import random
import subprocess
import sys

_VARS = ("a", "b", "c", "x", "y", "n", "m", "k", "total", "count", "value", "size")
_WORDS = ("lamp", "river", "stone", "apple", "garden", "pepper", "window", "banana", "tiger", "yellow", "candle",
          "melon", "rocket", "puzzle", "silver", "button")
_BRANCH_WORDS = (("big", "small"), ("yes", "no"), ("hot", "cold"), ("high", "low"), ("even", "odd"))


def _chain(rng: random.Random) -> list[str]:
    names = rng.sample(_VARS, 3)
    lines = [f"{names[0]} = {rng.randint(1, 9)}"]
    for i in range(1, rng.randint(2, 3)):
        op = rng.choice(("+", "-", "*"))
        lines.append(f"{names[i]} = {names[i - 1]} {op} {rng.randint(1, 5)}")
    return lines + [f"print({names[len(lines) - 1]})"]


def _loop(rng: random.Random) -> list[str]:
    acc = rng.choice(("total", "count", "s"))
    body = rng.choice((f"{acc} = {acc} + {rng.randint(1, 4)}", f"{acc} = {acc} + i"))
    return [f"{acc} = {rng.randint(0, 3)}", f"for i in range({rng.randint(2, 5)}):", f"    {body}", f"print({acc})"]


def _function(rng: random.Random) -> list[str]:
    name = rng.choice(("f", "g", "step", "calc", "bump"))
    a, b = rng.randint(2, 3), rng.randint(0, 5)
    return [f"def {name}(x):", f"    return x * {a} + {b}", f"print({name}({rng.randint(0, 6)}))"]


def _branch(rng: random.Random) -> list[str]:
    var, (yes, no) = rng.choice(("n", "x", "score")), rng.choice(_BRANCH_WORDS)
    return [f"{var} = {rng.randint(0, 12)}", f"if {var} > {rng.randint(2, 9)}:", f'    print("{yes}")', "else:",
            f'    print("{no}")']


def _string(rng: random.Random) -> list[str]:
    w = rng.choice(_WORDS)
    expr = rng.choice(("word.upper()", "word[::-1]", "len(word)", f'word.count("{rng.choice(w)}")', "word[0]",
                       "word[-1]"))
    return [f'word = "{w}"', f"print({expr})"]


def _list(rng: random.Random) -> list[str]:
    nums = [rng.randint(0, 9) for _ in range(rng.randint(3, 4))]
    expr = rng.choice(("max(nums)", "min(nums)", "sum(nums)", "len(nums)", f"nums[{rng.randrange(len(nums))}]"))
    return [f"nums = {nums}", f"print({expr})"]


PROGRAM_KINDS = {"chain": _chain, "loop": _loop, "function": _function, "branch": _branch, "string": _string,
                 "list": _list}


def run_trusted(source: str) -> str:
    """Run a program this module generated (trusted, terminating) and return its stdout without the final newline."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(source, "<toyworld>", "exec"), {"__builtins__": __builtins__})  # noqa: S102
    return buf.getvalue().rstrip("\n")


def make_program(rng: random.Random, kind: str = "") -> tuple[str, str]:
    """(source, printed output) for a random program of `kind` (random kind if empty)."""
    kind = kind or rng.choice(sorted(PROGRAM_KINDS))
    source = "\n".join(PROGRAM_KINDS[kind](rng))
    return source, run_trusted(source)


@dataclasses.dataclass(frozen=True)
class FunctionTask:
    """A HumanEval-shaped exercise: write `entry_point` so that `test`'s `check(candidate)` passes."""

    entry_point: str
    description: str  # one sentence, used in chat prompts
    prompt: str  # signature + docstring (HumanEval "prompt")
    canonical_solution: str  # the body (HumanEval "canonical_solution")
    test: str  # "def check(candidate): ..." (HumanEval "test")

    @property
    def solution(self) -> str:
        """The whole function as an assistant would write it."""
        return self.prompt.split('    """')[0] + self.canonical_solution


def _fn(name: str, arg: str, doc: str, body: str, cases: list) -> FunctionTask:
    prompt = f'def {name}({arg}):\n    """{doc}"""\n'
    canon = f"    return {body}\n"
    ns: dict = {}
    exec(prompt + canon, ns)  # noqa: S102 - our own source, to compute the expected outputs
    asserts = "".join(f"    assert candidate({c!r}) == {ns[name](c)!r}\n" for c in cases)
    return FunctionTask(name, doc, prompt, canon, "def check(candidate):\n" + asserts)


def make_function_task(rng: random.Random) -> FunctionTask:
    """A random tiny function exercise with three test cases."""
    k = rng.randint(2, 9)
    ints = rng.sample(range(0, 20), 3)
    words = rng.sample(_WORDS, 3)
    c = rng.choice("aeiort")
    choices = [
        lambda: _fn(f"add_{k}", "x", f"Return x plus {k}.", f"x + {k}", ints),
        lambda: _fn(f"times_{k}", "x", f"Return x times {k}.", f"x * {k}", ints),
        lambda: _fn("is_even", "x", "Return True if x is even.", "x % 2 == 0", ints),
        lambda: _fn("first_letter", "word", "Return the first letter of word.", "word[0]", words),
        lambda: _fn("reverse", "word", "Return word written backwards.", "word[::-1]", words),
        lambda: _fn("shout", "word", "Return word in upper case.", "word.upper()", words),
        lambda: _fn(f"count_{c}", "word", f"Return how many times the letter {c} appears in word.",
                    f'word.count("{c}")', words),
        lambda: _fn("largest", "nums", "Return the largest number in nums.", "max(nums)",
                    [rng.sample(range(10), 3) for _ in range(3)]),
    ]
    return rng.choice(choices)()


def run_untrusted(source: str, *, timeout_s: float = 5.0) -> tuple[bool, str]:
    """Run model-written code in an isolated subprocess with a time limit: (exited cleanly, stdout+stderr)."""
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", source], capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout_s}s"
    return proc.returncode == 0, proc.stdout + proc.stderr


def passes_tests(code: str, task: FunctionTask, *, timeout_s: float = 5.0) -> bool:
    """Whether `code` (a response defining task.entry_point) passes the task's tests."""
    code = strip_code_fence(code)
    program = f"{code}\n\n{task.test}\ncheck({task.entry_point})\n"
    return run_untrusted(program, timeout_s=timeout_s)[0]


def strip_code_fence(text: str) -> str:
    """'```python\\ncode\\n```' -> 'code' (text without a fence is returned stripped)."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip("\n")


def code_document(rng: random.Random, n_snippets: int) -> str:
    """A source file of traced programs (output in a trailing comment) and small functions with asserts."""
    parts = []
    for _ in range(n_snippets):
        if rng.random() < 0.6:
            src, out = make_program(rng)
            parts.append(f"{src}\n# output: {out}")
        else:
            t = make_function_task(rng)
            ns: dict = {}
            exec(t.solution, ns)  # noqa: S102
            arg = {"x": rng.randint(0, 9), "word": rng.choice(_WORDS), "nums": rng.sample(range(10), 3)}[
                t.prompt.split("(")[1].split(")")[0]]
            parts.append(f"{t.prompt}{t.canonical_solution}\n\nassert {t.entry_point}({arg!r}) == "
                         f"{ns[t.entry_point](arg)!r}")
    return "\n\n\n".join(parts) + "\n"
