"""Code execution benchmarks (HumanEval and MBPP shapes): run each program against its tests in a subprocess.

Each program runs in a fresh `python -I` (isolated mode: no user site, no PYTHON* env) in an empty temporary
directory, in its own session so a timeout kills the whole process group, under RLIMIT_AS (memory) and
RLIMIT_CPU. This contains accidents of model-written code; it is not a security sandbox — run untrusted code in a
container.

    pass@k (unbiased, Chen et al. 2021) = 1 - C(n - c, k) / C(n, k)   for n samples of which c pass
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from nemotron_jax.eval.generative import Generator, truncate_at_stop
from nemotron_jax.eval.io import DatasetError, load_jsonl, require_keys

HUMANEVAL_STOP = ("\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(")
FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class ExecResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout"
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class CodeItem:
    task_id: str
    prompt: str  # what the model continues (HumanEval: signature + docstring; MBPP: the task text)
    test: str  # code that raises if the candidate is wrong
    entry_point: str = ""
    completes_prompt: bool = True  # HumanEval: program = prompt + completion; MBPP: the completion alone

    def program(self, completion: str) -> str:
        body = (self.prompt + completion) if self.completes_prompt else completion
        check = f"\n\ncheck({self.entry_point})\n" if self.entry_point else "\n"
        return body + "\n\n" + self.test + check


def parse_humaneval(obj: dict[str, Any], where: str) -> CodeItem:
    """{"task_id", "prompt", "test" (defines check(candidate)), "entry_point"}."""
    require_keys(obj, ("task_id", "prompt", "test", "entry_point"), where)
    return CodeItem(str(obj["task_id"]), obj["prompt"], obj["test"], obj["entry_point"])


def parse_mbpp(obj: dict[str, Any], where: str) -> CodeItem:
    """{"task_id", "text", "test_list": ["assert ..."], "test_setup_code"?}."""
    require_keys(obj, ("task_id", "text", "test_list"), where)
    if not isinstance(obj["test_list"], list) or not obj["test_list"]:
        raise DatasetError(f"{where}: test_list must be a non-empty list of assert statements")
    tests = obj.get("test_setup_code", "") + "\n" + "\n".join(obj["test_list"])
    first = obj["test_list"][0]
    prompt = f'"""\n{obj["text"]}\nYour code should pass this test:\n{first}\n"""\n'
    return CodeItem(str(obj["task_id"]), prompt, tests, "", completes_prompt=False)


def load_code(path: str | Path, fmt: str = "auto") -> list[CodeItem]:
    """HumanEval or MBPP JSONL ("auto": by keys)."""
    def parse(obj: dict[str, Any], where: str) -> CodeItem:
        kind = fmt if fmt != "auto" else ("humaneval" if "entry_point" in obj else "mbpp")
        return {"humaneval": parse_humaneval, "mbpp": parse_mbpp}[kind](obj, where)

    return load_jsonl(path, parse)


def extract_code(text: str) -> str:
    """The first fenced ```python block if there is one (chat models), else the text unchanged."""
    m = FENCE.search(text)
    return m.group(1) if m else text


# Limits are set by the child itself before it runs the program: a preexec_fn would run Python between fork and
# exec inside a multithreaded JAX process, which can deadlock.
_PRELUDE = """import resource, runpy, sys
for lim, val in ((resource.RLIMIT_AS, int(sys.argv[2])), (resource.RLIMIT_CPU, int(sys.argv[3]))):
    try:
        resource.setrlimit(lim, (val, val))
    except (ValueError, OSError):
        pass
sys.argv = sys.argv[1:2]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_program(source: str, *, timeout_s: float = 10.0, memory_mb: int = 1024) -> ExecResult:
    """Run `source` in a fresh isolated interpreter; passed = exit status 0 within the time limit."""
    with tempfile.TemporaryDirectory(prefix="nemotron_eval_") as tmp:
        path = Path(tmp, "program.py")
        path.write_text(source, encoding="utf-8")
        cmd = [sys.executable, "-I", "-c", _PRELUDE, str(path), str(memory_mb * 2**20), str(int(timeout_s) + 1)]
        proc = subprocess.Popen(cmd, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True,
                                env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"})
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return ExecResult(False, "timeout", f"killed after {timeout_s:g}s")
        if proc.returncode == 0:
            return ExecResult(True, "passed")
        tail = err.decode("utf-8", "replace").strip().splitlines()
        return ExecResult(False, "failed", tail[-1] if tail else f"exit status {proc.returncode}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (numerically stable product form)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def score_code(items: Sequence[CodeItem], completions: Sequence[Sequence[str]], *, ks: Sequence[int] = (1,),
               timeout_s: float = 10.0, memory_mb: int = 1024, workers: Optional[int] = None) -> dict[str, Any]:
    """Run every (item, sample) program; pass@k averaged over items for each k <= samples per item."""
    if len(items) != len(completions):
        raise ValueError(f"{len(items)} problems but {len(completions)} completion lists")
    jobs = [(i, item.program(extract_code(c))) for i, (item, cs) in enumerate(zip(items, completions)) for c in cs]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = list(pool.map(lambda j: run_program(j[1], timeout_s=timeout_s, memory_mb=memory_mb), jobs))
    per_item: list[list[ExecResult]] = [[] for _ in items]
    for (i, _), r in zip(jobs, results):
        per_item[i].append(r)
    out: dict[str, Any] = {"n": len(items)}
    for k in ks:
        if all(len(rs) >= k for rs in per_item):
            out[f"pass@{k}"] = float(np.mean([pass_at_k(len(rs), sum(r.passed for r in rs), k) for rs in per_item]))
    out["predictions"] = [{"task_id": it.task_id, "status": [r.status for r in rs], "detail": [r.detail for r in rs]}
                          for it, rs in zip(items, per_item)]
    return out


def evaluate_code(generator: Generator, items: Sequence[CodeItem], *, max_tokens: int = 384,
                  timeout_s: float = 10.0, memory_mb: int = 1024) -> dict[str, Any]:
    """One greedy completion per problem -> pass@1."""
    outputs = generator.generate([it.prompt for it in items], max_tokens=max_tokens, stop=HUMANEVAL_STOP)
    completions = [[truncate_at_stop(o, HUMANEVAL_STOP) if it.completes_prompt else o]
                   for it, o in zip(items, outputs)]
    return score_code(items, completions, timeout_s=timeout_s, memory_mb=memory_mb)
