"""The SDG runner: stages chained from a config, resumable JSONL output with provenance, sharding, progress.

    nemotron-jax sdg CONFIG.{py,json} [--shard i/n] [--out DIR] [--concurrency N] [--seed S] [--no-progress]
    nemotron-jax sdg CONFIG --merge N      # after all N shards finished: <out_dir>/merged.jsonl

A config (a JSON file, or a Python file defining `CONFIG`) is a dict or `PipelineConfig`:

    {"name": "open_qa", "out_dir": "runs/sdg", "seed": 0, "concurrency": 8,
     "models": {"generator": {"backend": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "toy"}},
     "stages": [{"type": "seed", "items": [{}]}, {"type": "macro_topics", "n": 5}, ...]}

Output, one directory per run (per shard: `shard-00001-of-00004/` under it): `NN_<stage>.jsonl` per finished stage,
`manifest.json` (counts, parse failures, client stats). A per-item stage streams finished items to
`NN_<stage>.partial.jsonl` plus their input ids to `NN_<stage>.done`; a rerun keeps finished items, drops lines a
kill cut short, and processes only the rest, then writes the stage file in input order. Each stage records a
fingerprint of its settings and everything upstream (seed, templates); a rerun with changed settings in the same
directory fails instead of mixing old and new outputs. Model requests are seeded
by item id and cached (sqlite, shared by shards), so a resumed run equals an uninterrupted one and a replay makes
no model calls. `--shard i/n` keeps, at stage `shard_at` (default: the first stage after the sources), the items
whose id hashes to shard i; earlier stages run in every shard (deterministic, and cached). A pipeline that starts
from one seed item should set `shard_at` to the stage where the fan-out has happened (e.g. "open_qa").
Whole-set stages after the shard point (dedup) see one shard's items only. A request the endpoint rejects for good
(HTTP 4xx) drops that item into `NN_<stage>.rejected.jsonl` (`skip_rejected`, default on).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Mapping, Optional, Sequence

from tqdm import tqdm

from nemotron_jax.sdg import filters, judges, preference  # noqa: F401  (register their stages)
from nemotron_jax.sdg.clients import Backend, ClientError, ModelClient, ResponseCache, make_backend
from nemotron_jax.sdg.parsing import ParseStats
from nemotron_jax.sdg.stages import STAGES, Context, Item, Stage
from nemotron_jax.sdg.templates import load_templates

_CLIENT_OPTS = ("max_retries", "backoff_s", "max_backoff_s", "max_in_flight")


@dataclasses.dataclass
class PipelineConfig:
    """A pipeline: models by name, stage specs in order, where to write, seed, concurrency, cache, templates."""

    stages: list
    models: dict = dataclasses.field(default_factory=dict)
    name: str = "sdg"
    out_dir: str = "runs/sdg"
    seed: int = 0
    concurrency: int = 8
    cache: Optional[str] = ""  # "" -> <out_dir>/cache.sqlite; None -> no cache
    templates: Optional[Any] = None  # {name: text} or a JSON file of that
    shard_at: Optional[str] = None
    # an item whose request the endpoint rejects for good (HTTP 4xx: prompt too long...) is logged to
    # NN_<stage>.rejected.jsonl and dropped; False makes it fail the stage like any other error
    skip_rejected: bool = True

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("PipelineConfig.stages is empty; list at least a source stage and one more")
        if self.concurrency < 1:
            raise ValueError(f"PipelineConfig.concurrency must be >= 1, got {self.concurrency}")


class StageFailed(RuntimeError):
    """Some items of a stage failed; finished ones are kept, a rerun retries the rest."""


def build_stage(spec: Mapping[str, Any] | Stage) -> Stage:
    """A Stage from {"type": ..., **params} (or a Stage as is); unknown types/params fail with the choices."""
    if isinstance(spec, Stage):
        return spec
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in STAGES:
        raise ValueError(f"unknown stage type {kind!r}; known: {sorted(STAGES)}")
    cls = STAGES[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(spec) - fields)
    if unknown:
        raise ValueError(f"stage {kind!r} does not take {unknown}; it takes {sorted(fields)}")
    for k, v in spec.items():  # JSON has lists where stages declare tuples
        if isinstance(v, list) and isinstance(getattr(cls, k, None), tuple):
            spec[k] = tuple(v)
    return cls(**spec)


def build_client(spec: Any, cache: Optional[ResponseCache]) -> ModelClient:
    """A ModelClient from a spec dict, a Backend object, or a ready ModelClient."""
    if isinstance(spec, ModelClient):
        return spec
    if not isinstance(spec, Mapping):
        return ModelClient(spec, cache=cache)
    opts = {k: spec[k] for k in _CLIENT_OPTS if k in spec}
    backend: Backend = make_backend({k: v for k, v in spec.items() if k not in _CLIENT_OPTS})
    return ModelClient(backend, cache=cache, **opts)


def shard_of(item_id: str, num_shards: int) -> int:
    """Stable shard of an item id (sha256, so it does not depend on PYTHONHASHSEED)."""
    return int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) % num_shards


def load_config(path: str) -> PipelineConfig:
    """A PipelineConfig from a .json file or a .py file defining CONFIG."""
    if path.endswith(".json"):
        with open(path) as f:
            try:
                raw = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    else:
        spec = importlib.util.spec_from_file_location("_sdg_config", path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot load config {path!r}: expected a .json or .py file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not hasattr(module, "CONFIG"):
            raise ValueError(f"{path} defines no CONFIG (a dict or PipelineConfig)")
        raw = module.CONFIG
    return raw if isinstance(raw, PipelineConfig) else PipelineConfig(**raw)


# ---------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class RunResult:
    """Where the run wrote, the final stage's file and the counters."""

    out_dir: str
    final_path: str
    stage_paths: list
    counts: dict
    parse: dict
    clients: dict


def _read_jsonl(path: str) -> list[Item]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_jsonl_atomic(path: str, rows: Sequence[Item]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


class _ItemLog:
    """The resumable part of a per-item stage: finished items' rows (partial file) and ids (done file)."""

    def __init__(self, partial: str, done: str):
        self.partial, self.done_path = partial, done
        self.done: set[str] = set()
        if os.path.exists(done):
            with open(done) as f:
                lines = f.read().split("\n")
            self.done = {ln for ln in lines[:-1] if ln}  # the last piece is '' or a line cut by a kill
        rows = []
        if os.path.exists(partial):
            with open(partial) as f:
                for line in f:
                    if not line.endswith("\n"):
                        break  # cut short by a kill
                    row = json.loads(line)
                    if row["_src"] in self.done:
                        rows.append(row)
        _write_jsonl_atomic(partial, rows)  # rows of unfinished items are dropped; they will be redone
        with open(done, "w") as f:
            f.write("".join(f"{d}\n" for d in sorted(self.done)))
        self._lock = threading.Lock()
        self._rows_f = open(partial, "a")
        self._done_f = open(done, "a")

    def add(self, src: str, rows: list[Item]) -> None:
        with self._lock:
            for j, r in enumerate(rows):
                self._rows_f.write(json.dumps({**r, "_src": src, "_j": j}, ensure_ascii=False) + "\n")
            self._rows_f.flush()
            self._done_f.write(src + "\n")  # after the rows: a done id always has all its rows on disk
            self._done_f.flush()

    def close(self) -> None:
        self._rows_f.close()
        self._done_f.close()


def _run_per_item(stage: Stage, items: list[Item], ctx: Context, base: str, concurrency: int,
                  progress: bool, skip_rejected: bool = True) -> list[Item]:
    log = _ItemLog(base + ".partial.jsonl", base + ".done")
    todo = [it for it in items if it["id"] not in log.done]
    errors: list[tuple[str, BaseException]] = []
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=stage.name, disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    rejected_lock = threading.Lock()

    def work(item: Item) -> None:
        try:
            rows = stage.process(item, ctx)
        except ClientError as e:
            if not skip_rejected:
                raise
            with rejected_lock, open(base + ".rejected.jsonl", "a") as f:
                f.write(json.dumps({"id": item["id"], "stage": stage.name, "error": str(e)}) + "\n")
            ctx.stats.add(f"rejected:{stage.name}")
            rows = []
        log.add(item["id"], rows)

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {pool.submit(work, it): it["id"] for it in todo}
            for fut in as_completed(futures):
                if fut.exception() is not None:
                    errors.append((futures[fut], fut.exception()))
                bar.update(1)
    finally:
        bar.close()
        log.close()
    if errors:
        first_id, first = errors[0]
        raise StageFailed(f"stage {stage.name!r}: {len(errors)} of {len(items)} items failed (first: item "
                          f"{first_id}: {type(first).__name__}: {first}); finished items are kept, rerun to "
                          f"retry the rest") from first
    order = {it["id"]: i for i, it in enumerate(items)}
    rows = sorted(_read_jsonl(base + ".partial.jsonl"), key=lambda r: (order[r["_src"]], r["_j"]))
    return [{k: v for k, v in r.items() if k not in ("_src", "_j")} for r in rows]


def run_pipeline(cfg: PipelineConfig, *, shard: tuple[int, int] = (0, 1), progress: bool = True,
                 clients: Optional[dict[str, ModelClient]] = None) -> RunResult:
    """Run (or resume) every stage of `cfg`; returns where the outputs are. `clients` overrides cfg.models."""
    index, num = shard
    if not 0 <= index < num:
        raise ValueError(f"--shard {index}/{num}: need 0 <= i < n")
    out_dir = cfg.out_dir if num == 1 else os.path.join(cfg.out_dir, f"shard-{index:05d}-of-{num:05d}")
    os.makedirs(out_dir, exist_ok=True)
    cache_path = os.path.join(cfg.out_dir, "cache.sqlite") if cfg.cache == "" else cfg.cache
    cache = ResponseCache(cache_path) if cache_path else None
    models = dict(clients) if clients is not None else {n: build_client(s, cache) for n, s in cfg.models.items()}
    ctx = Context(models=models, templates=load_templates(cfg.templates), stats=ParseStats(), seed=cfg.seed)
    stages = [build_stage(s) for s in cfg.stages]
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique, got {names}; give repeated types a 'name'")
    _check_models(stages, models)
    shard_idx = _shard_index(stages, cfg.shard_at)

    items: list[Item] = []
    counts, paths = {}, []
    fingerprint = _digest({"seed": cfg.seed, "templates": {n: t.text for n, t in sorted(ctx.templates.items())}})
    for k, stage in enumerate(stages):
        if k == shard_idx and num > 1:
            items = [it for it in items if shard_of(it["id"], num) == index]
        base = os.path.join(out_dir, f"{k:02d}_{stage.name}")
        path = base + ".jsonl"
        fingerprint = _digest({"upstream": fingerprint, "stage": stage.type, **dataclasses.asdict(stage)})
        _check_fingerprint(base, fingerprint, stage.name)
        if os.path.exists(path):  # finished in an earlier run
            items = _read_jsonl(path)
        else:
            t0 = time.time()
            if stage.source:
                items = stage.process_all([], ctx)
            elif stage.per_item:
                items = _run_per_item(stage, items, ctx, base, cfg.concurrency, progress, cfg.skip_rejected)
            else:
                items = stage.process_all(items, ctx)
            _write_jsonl_atomic(path, items)
            for leftover in (base + ".partial.jsonl", base + ".done"):
                if os.path.exists(leftover):
                    os.remove(leftover)
            if progress:
                print(f"[sdg] {stage.name}: {len(items)} items in {time.time() - t0:.1f}s", file=sys.stderr)
        counts[stage.name] = len(items)
        paths.append(path)

    result = RunResult(out_dir=out_dir, final_path=paths[-1], stage_paths=paths, counts=counts,
                       parse=dict(ctx.stats.counts),
                       clients={n: dataclasses.asdict(c.stats) for n, c in models.items()})
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"name": cfg.name, "shard": [index, num], "seed": cfg.seed, "stages": names,
                   # provenance names models by role; this maps each role to the model its endpoint served
                   "models": {role: c.name for role, c in models.items()},
                   **{k: v for k, v in dataclasses.asdict(result).items() if k != "stage_paths"}}, f, indent=1)
    return result


def merge_shards(cfg: PipelineConfig, num_shards: int) -> str:
    """Concatenate the final stage file of shards 0..n-1 (all must be finished) into <out_dir>/merged.jsonl."""
    stages = [build_stage(x) for x in cfg.stages]
    final = f"{len(stages) - 1:02d}_{stages[-1].name}.jsonl"
    paths = [os.path.join(cfg.out_dir, f"shard-{i:05d}-of-{num_shards:05d}", final) for i in range(num_shards)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise StageFailed(f"cannot merge: {len(missing)} of {num_shards} shards have not finished (missing "
                          f"{missing[0]}); run them with --shard i/{num_shards} first")
    out = os.path.join(cfg.out_dir, "merged.jsonl")
    with open(out + ".tmp", "w") as f:
        for p in paths:
            with open(p) as g:
                f.write(g.read())
    os.replace(out + ".tmp", out)
    return out


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_fingerprint(base: str, fingerprint: str, name: str) -> None:
    """Outputs on disk must come from this stage's settings (and everything upstream): else refuse to mix them."""
    fp_path = base + ".fingerprint"
    if os.path.exists(fp_path):
        with open(fp_path) as f:
            if f.read().strip() != fingerprint:
                raise ValueError(f"stage {name!r}: its outputs in {os.path.dirname(base)} were made with different "
                                 f"settings (this stage's, an earlier stage's, the seed or the templates); use a new "
                                 f"out_dir, or delete {os.path.basename(base)}* and every later stage's files")
    else:
        with open(fp_path, "w") as f:
            f.write(fingerprint + "\n")


def _check_models(stages: list[Stage], models: Mapping[str, Any]) -> None:
    """Fail before any work if a stage names a model the pipeline does not define."""
    for s in stages:
        wanted = [getattr(s, "model", None)] + list(getattr(s, "models", ()) or ())
        missing = [m for m in wanted if m is not None and m not in models]
        if missing:
            raise ValueError(f"stage {s.name!r} uses model(s) {missing} but the pipeline defines {sorted(models)}; "
                             f"add them under 'models' or set the stage's 'model'")


def _shard_index(stages: list[Stage], shard_at: Optional[str]) -> int:
    if shard_at is None:
        return next((k for k, s in enumerate(stages) if not s.source), len(stages))
    for k, s in enumerate(stages):
        if s.name == shard_at:
            return k
    raise ValueError(f"shard_at={shard_at!r} is not a stage name; stages: {[s.name for s in stages]}")


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < n")
    return i, n


def cli_main(argv: Optional[Sequence[str]] = None) -> int:
    """`nemotron-jax sdg CONFIG`: run or resume a pipeline."""
    p = argparse.ArgumentParser(prog="nemotron-jax sdg", description=__doc__.split("\n")[0])
    p.add_argument("config", help="pipeline config: a .json file or a .py file defining CONFIG")
    p.add_argument("--shard", type=_parse_shard, default=(0, 1), help="i/n: run shard i of n (0-based)")
    p.add_argument("--out", help="output directory (overrides out_dir)")
    p.add_argument("--concurrency", type=int, help="items in flight (overrides concurrency)")
    p.add_argument("--seed", type=int, help="pipeline seed (overrides seed)")
    p.add_argument("--merge", type=int, metavar="N", help="concatenate the finished outputs of N shards and exit")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(list(argv) if argv is not None else None)
    cfg = load_config(args.config)
    overrides = {k: v for k, v in (("out_dir", args.out), ("concurrency", args.concurrency), ("seed", args.seed))
                 if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    try:
        if args.merge:
            print(merge_shards(cfg, args.merge))
            return 0
        result = run_pipeline(cfg, shard=args.shard, progress=not args.no_progress)
    except StageFailed as e:
        print(f"nemotron-jax sdg: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"final": result.final_path, "counts": result.counts, "parse": result.parse}, indent=1))
    return 0
