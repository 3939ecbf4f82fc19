"""A benchmark suite run over several models (e.g. each alignment stage) into the paper's per-stage table.

    suite.json: {"benchmarks": [
        {"name": "MMLU", "kind": "mc", "path": "mmlu.jsonl", "k": 5, "fewshot_path": "mmlu_dev.jsonl"},
        {"name": "GSM8K", "kind": "gsm8k", "path": "gsm8k.jsonl", "chat": true},
        {"name": "HumanEval", "kind": "code", "path": "humaneval.jsonl"},
        {"name": "IFEval", "kind": "ifeval", "path": "ifeval.jsonl"},          # -> columns IFEval-P, IFEval-I
        {"name": "RewardBench", "kind": "reward", "path": "rewardbench.jsonl"}]}

Each benchmark reports its headline number(s) as percent columns; the full results (per subject / category /
example) are kept beside them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Optional

from nemotron_jax.eval import code_exec, generative, ifeval, multiple_choice, reward_bench
from nemotron_jax.eval.generative import Generator
from nemotron_jax.eval.reward_bench import RewardScorer
from nemotron_jax.eval.scoring import LoglikelihoodScorer

KINDS = ("mc", "gsm8k", "ifeval", "code", "reward")


class SuiteError(ValueError):
    """A suite file that cannot run; the message says which benchmark and what to fix."""


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    kind: str
    path: str
    k: int = 0
    fewshot_path: Optional[str] = None
    format: str = "auto"  # mc: auto | mmlu | arc | hellaswag | winogrande; code: auto | humaneval | mbpp
    metric: str = "acc"  # mc: acc | acc_norm
    chat: Optional[bool] = None  # generative prompts through the chat template (default: ifeval yes, else no)
    max_tokens: Optional[int] = None
    limit: Optional[int] = None  # evaluate only the first N items (smoke runs)
    timeout_s: float = 10.0  # code: per-program time limit

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SuiteError(f"benchmark {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.metric not in ("acc", "acc_norm"):
            raise SuiteError(f"benchmark {self.name!r}: metric must be acc or acc_norm, got {self.metric!r}")
        if self.k < 0 or (self.limit is not None and self.limit < 1):
            raise SuiteError(f"benchmark {self.name!r}: k must be >= 0 and limit >= 1")


def load_suite(path: str | Path) -> list[Benchmark]:
    """Read a suite JSON file; data paths are relative to the suite file's folder."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SuiteError(f"{path}: cannot read the suite ({e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("benchmarks"), list) or not spec["benchmarks"]:
        raise SuiteError(f"{path}: expected {{\"benchmarks\": [{{\"name\", \"kind\", \"path\", ...}}, ...]}}")
    fields = {f.name for f in dataclasses.fields(Benchmark)}
    out = []
    for i, b in enumerate(spec["benchmarks"]):
        unknown = set(b) - fields if isinstance(b, dict) else set()
        if not isinstance(b, dict) or unknown or not {"name", "kind", "path"} <= b.keys():
            raise SuiteError(f"{path}: benchmark #{i} needs name/kind/path and only the fields {sorted(fields)}"
                             + (f"; unknown: {sorted(unknown)}" if unknown else ""))
        b = dict(b)
        for key in ("path", "fewshot_path"):
            if b.get(key) and not Path(b[key]).is_absolute():
                b[key] = str(path.parent / b[key])
        out.append(Benchmark(**b))
    names = [b.name for b in out]
    if len(set(names)) != len(names):
        raise SuiteError(f"{path}: benchmark names must be unique, got {names}")
    return out


@dataclasses.dataclass
class ModelHandle:
    """What a model can do: score continuations, generate, and/or reward. Missing abilities skip benchmarks."""

    name: str
    scorer: Optional[LoglikelihoodScorer] = None
    generator: Optional[Generator] = None
    reward: Optional[RewardScorer] = None
    close: Callable[[], None] = lambda: None


def _limit(items: list, n: Optional[int]) -> list:
    return items[:n] if n else items


LOADERS: dict[str, Callable[[Benchmark, str], list]] = {
    "mc": lambda b, p: multiple_choice.load_mc(p, b.format),
    "gsm8k": lambda b, p: generative.load_gsm8k(p),
    "ifeval": lambda b, p: ifeval.load_ifeval(p),
    "code": lambda b, p: code_exec.load_code(p, b.format),
    "reward": lambda b, p: reward_bench.load_rewardbench(p),
}


@dataclasses.dataclass(frozen=True)
class Loaded:
    items: list
    shots: Optional[list]


def load_data(b: Benchmark) -> Loaded:
    """The benchmark's items (first `limit`) and k-shot pool; a malformed line fails here, before any model loads."""
    load = LOADERS[b.kind]
    return Loaded(_limit(load(b, b.path), b.limit), load(b, b.fewshot_path) if b.fewshot_path else None)


def _run_mc(b: Benchmark, m: ModelHandle, d: Loaded) -> tuple[dict[str, float], dict]:
    res = multiple_choice.evaluate_mc(m.scorer, d.items, k=b.k, fewshot=d.shots)
    return {b.name: 100 * res[b.metric]}, res


def _run_gsm8k(b: Benchmark, m: ModelHandle, d: Loaded) -> tuple[dict[str, float], dict]:
    res = generative.evaluate_gsm8k(m.generator, d.items, k=b.k, fewshot=d.shots, chat=bool(b.chat),
                                    max_tokens=b.max_tokens or 256)
    return {b.name: 100 * res["exact_match"]}, res


def _run_ifeval(b: Benchmark, m: ModelHandle, d: Loaded) -> tuple[dict[str, float], dict]:
    res = ifeval.evaluate_ifeval(m.generator, d.items, chat=b.chat is not False, max_tokens=b.max_tokens or 512)
    return {f"{b.name}-P": 100 * res["prompt_strict"], f"{b.name}-I": 100 * res["instruction_strict"]}, res


def _run_code(b: Benchmark, m: ModelHandle, d: Loaded) -> tuple[dict[str, float], dict]:
    res = code_exec.evaluate_code(m.generator, d.items, max_tokens=b.max_tokens or 384, timeout_s=b.timeout_s)
    return {b.name: 100 * res["pass@1"]}, res


def _run_reward(b: Benchmark, m: ModelHandle, d: Loaded) -> tuple[dict[str, float], dict]:
    res = reward_bench.evaluate_reward_model(m.reward, d.items)
    return {b.name: 100 * res["overall"]}, res


RUNNERS = {"mc": (_run_mc, "scorer"), "gsm8k": (_run_gsm8k, "generator"), "ifeval": (_run_ifeval, "generator"),
           "code": (_run_code, "generator"), "reward": (_run_reward, "reward")}


def run_benchmark(b: Benchmark, model: ModelHandle,
                  data: Optional[Loaded] = None) -> Optional[tuple[dict[str, float], dict]]:
    """(headline columns, full results), or None when the model lacks the ability the benchmark needs."""
    fn, needs = RUNNERS[b.kind]
    if getattr(model, needs) is None:
        return None
    return fn(b, model, data or load_data(b))


def evaluate_stages(stages: list[tuple[str, Callable[[], ModelHandle]]], benchmarks: list[Benchmark], *,
                    out_dir: Optional[str | Path] = None,
                    log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Load each stage's model in turn (one in memory at a time), run every benchmark it can, collect columns.

    Every dataset is read first, so a malformed line fails before any model is loaded. With `out_dir`, each
    (stage, benchmark) result is written as JSON as soon as it is done, and results that already exist there are
    reused rather than recomputed (resume).
    """
    data = {b.name: load_data(b) for b in benchmarks}
    table: dict[str, dict[str, float]] = {}
    for stage, load in stages:
        table[stage] = {}
        model = None
        for b in benchmarks:
            path = Path(out_dir, "details", _slug(stage), f"{_slug(b.name)}.json") if out_dir else None
            if path is not None and path.exists():
                table[stage].update(json.loads(path.read_text())["columns"])
                continue
            model = model or load()
            got = run_benchmark(b, model, data[b.name])
            if got is None:
                log(f"[{stage}] {b.name}: skipped (the model has no {RUNNERS[b.kind][1]})")
                continue
            cols, full = got
            table[stage].update(cols)
            log(f"[{stage}] {b.name}: " + ", ".join(f"{c} {v:.1f}" for c, v in cols.items()))
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"columns": cols, "results": full}, indent=1, default=float))
        if model is not None:
            model.close()
    return table


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("_") or "x"
