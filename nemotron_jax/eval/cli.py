"""`nemotron-jax eval`: run benchmark suites over one or more models and write per-stage reports.

    nemotron-jax eval run --suite suite.json --stage "Code SFT=runs/code_sft/params" \
                          --stage "+ DPO=runs/dpo/params" --out eval_out/
    nemotron-jax eval run --bench MMLU:mc:mmlu.jsonl:5 --stage base=preset:toy-tiny --out /tmp/smoke
    nemotron-jax eval report eval_out/ [--paper]

A MODEL is a checkpoint folder (params folder, HF folder, or a training checkpoint with --preset), `preset:NAME`
(random weights: smoke tests only), or an OpenAI-compatible base URL `http://host:port/v1#model-name` (generation
and reward through the server; multiple choice needs a server that supports echo + logprobs).
Outputs in --out: results.json, report.md, report.png and details/<stage>/<benchmark>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from nemotron_jax.eval import report
from nemotron_jax.eval.suite import Benchmark, ModelHandle, SuiteError, evaluate_stages, load_suite


class HttpRewardScorer:
    """Rewards through this project's `/v1/reward` route ({"conversations": [...]} -> {"data": [{"reward"}]})."""

    def __init__(self, base_url: str, model: str, batch: int = 32) -> None:
        from nemotron_jax.eval.backends import http_post

        self.post, self.model, self.batch = http_post(base_url, "/v1/reward"), model, batch

    def reward(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        out: list[float] = []
        for i in range(0, len(prompts), self.batch):
            convs = [[{"role": "user", "content": p}, {"role": "assistant", "content": r}]
                     for p, r in zip(prompts[i:i + self.batch], responses[i:i + self.batch])]
            out += [d["reward"] for d in self.post({"model": self.model, "conversations": convs})["data"]]
        return np.asarray(out, np.float64)


def _served_model(base_url: str) -> str:
    """The first model id from GET /v1/models (OpenAI servers reject requests naming another model)."""
    import urllib.request

    from nemotron_jax.eval.backends import BackendError

    base = base_url.rstrip("/")
    url = (base[:-3] if base.endswith("/v1") else base) + "/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())["data"][0]["id"]
    except Exception as e:  # noqa: BLE001 - any failure here means: name the model explicitly
        raise BackendError(f"cannot list the models at {url} ({e}); name one as URL#model") from None


def _url_handle(spec: str, name: str) -> ModelHandle:
    from nemotron_jax.eval.backends import CompletionsGenerator, CompletionsScorer

    url, _, model = spec.partition("#")
    model = model or _served_model(url)
    return ModelHandle(name, scorer=CompletionsScorer.http(url, model), generator=CompletionsGenerator.http(url, model),
                       reward=HttpRewardScorer(url, model))


def _local_handle(spec: str, name: str, tokenizer: Optional[str], preset: Optional[str]) -> ModelHandle:
    from nemotron_jax.inference.server import load_model, load_tokenizer_for

    random_init = spec.startswith("preset:")
    checkpoint = None if random_init else spec
    cfg, params = load_model(checkpoint, spec[len("preset:"):] if random_init else preset, random_init)
    tok = load_tokenizer_for(tokenizer, checkpoint, cfg.vocab_size)
    if "reward_head" in params:
        from nemotron_jax.eval.reward_bench import ModelRewardScorer

        return ModelHandle(name, reward=ModelRewardScorer(params, cfg, tok))
    from nemotron_jax.eval.scoring import ModelScorer

    gen = _LazyClientGenerator(params, cfg, tok, name)
    return ModelHandle(name, scorer=ModelScorer(params, cfg, tok), generator=gen, close=gen.close)


class _LazyClientGenerator:
    """Starts the in-process inference engine on the first generate (multiple-choice-only runs never need it)."""

    def __init__(self, params: Any, cfg: Any, tok: Any, name: str) -> None:
        self.args, self.client, self.gen = (params, cfg, tok, name), None, None

    def generate(self, prompts: Sequence[str], *, max_tokens: int, stop: Sequence[str] = ()) -> list[str]:
        if self.gen is None:
            from nemotron_jax.eval.backends import CompletionsGenerator
            from nemotron_jax.inference.client import InferenceClient

            params, cfg, tok, name = self.args
            self.client = InferenceClient.from_params(params, cfg, tok, model_name=name)
            self.gen = CompletionsGenerator.in_process(self.client)
        return self.gen.generate(prompts, max_tokens=max_tokens, stop=stop)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def model_loader(spec: str, name: str, *, tokenizer: Optional[str] = None,
                 preset: Optional[str] = None) -> Callable[[], ModelHandle]:
    """A deferred loader, so only one stage's model is in memory at a time."""
    if spec.startswith(("http://", "https://")):
        return lambda: _url_handle(spec, name)
    if not spec.startswith("preset:") and not Path(spec).exists():
        raise SuiteError(f"stage {name!r}: {spec} is not a folder, a preset:NAME or an http(s):// URL")
    return lambda: _local_handle(spec, name, tokenizer, preset)


def _parse_stage(text: str) -> tuple[str, str]:
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise SuiteError(f"--stage {text!r}: expected NAME=MODEL, e.g. 'Code SFT=runs/code_sft/params'")
    return name.strip(), spec.strip()


def _parse_bench(text: str) -> Benchmark:
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise SuiteError(f"--bench {text!r}: expected NAME:KIND:PATH[:K], e.g. MMLU:mc:mmlu.jsonl:5")
    return Benchmark(parts[0], parts[1], parts[2], k=int(parts[3]) if len(parts) == 4 else 0)


def write_report(out: Path, table: dict[str, dict[str, float]], *, paper: bool = False) -> None:
    """results.json, report.md (our stages, and the paper's table with --paper) and report.png."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(table, indent=1))
    md = "# Evaluation per stage\n\n" + report.stage_table(table)
    if paper:
        md += "\n## The paper's per-stage table (Nemotron-4 340B, SPEC §6)\n\n" + report.stage_table(
            report.PAPER_STAGES, digits=2)
    (out / "report.md").write_text(md)
    if any(table.values()):
        report.plot_stages(table, out / "report.png")


def _cmd_run(args: argparse.Namespace) -> int:
    benches = load_suite(args.suite) if args.suite else []
    benches += [_parse_bench(b) for b in args.bench or []]
    if not benches:
        raise SuiteError("give --suite FILE and/or --bench NAME:KIND:PATH[:K]")
    benches = [dataclasses.replace(b, limit=args.limit) if args.limit else b for b in benches]
    stages = [_parse_stage(s) for s in args.stage]
    loaders = [(n, model_loader(s, n, tokenizer=args.tokenizer, preset=args.preset)) for n, s in stages]
    out = Path(args.out)
    table = evaluate_stages(loaders, benches, out_dir=out)
    write_report(out, table, paper=args.paper)
    print(report.stage_table(table))
    print(f"wrote {out / 'report.md'}, {out / 'report.png'}, {out / 'results.json'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    path = out / "results.json"
    if not path.exists():
        raise SuiteError(f"{path}: not found; run `nemotron-jax eval run ... --out {out}` first")
    table = json.loads(path.read_text())
    write_report(out, table, paper=args.paper)
    print(report.stage_table(table))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nemotron-jax eval", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="evaluate models (stages) on a suite and write the report")
    r.add_argument("--suite", help="suite JSON file")
    r.add_argument("--bench", action="append", help="NAME:KIND:PATH[:K] (kind: mc gsm8k ifeval code reward)")
    r.add_argument("--stage", action="append", required=True, help="NAME=MODEL (repeat, in table order)")
    r.add_argument("--out", required=True, help="output folder (existing per-stage results are reused)")
    r.add_argument("--tokenizer", help="SentencePiece .model (default: <checkpoint>/tokenizer.model)")
    r.add_argument("--preset", help="model preset for training checkpoints that do not record their shape")
    r.add_argument("--limit", type=int, help="only the first N items of every benchmark (smoke runs)")
    r.add_argument("--paper", action="store_true", help="append the paper's per-stage table to report.md")
    r.set_defaults(fn=_cmd_run)
    rep = sub.add_parser("report", help="re-render report.md/png from DIR/results.json")
    rep.add_argument("dir")
    rep.add_argument("--paper", action="store_true")
    rep.set_defaults(fn=_cmd_report)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return args.fn(args)
    except SuiteError as e:
        print(f"nemotron-jax eval: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - dataset/backend errors get one clear line, not a traceback
        from nemotron_jax.eval.backends import BackendError
        from nemotron_jax.eval.io import DatasetError

        if isinstance(e, (DatasetError, BackendError)):
            print(f"nemotron-jax eval: {e}", file=sys.stderr)
            return 2
        raise
