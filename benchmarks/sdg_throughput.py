"""SDG items/s against this project's server on loopback, at several pipeline concurrencies.

    python benchmarks/sdg_throughput.py [--preset toy-tiny] [--items 96] [--concurrency 1 8 32] [--max-tokens 16]
                                        [--inprocess | --no-keep-alive]

Starts `nemotron-jax serve --preset P --random-init` on a free port, then for each concurrency runs the pipeline
seed -> to_prompt -> responses(k samples) with the cache off (every item is a real request), after a warm-up run at
every power-of-two concurrency up to the largest, so the server's batch shapes are compiled before timing. Prints one
table row per concurrency; the server's batching of concurrent requests is what makes items/s grow with concurrency.
"retries" counts requests the client re-sent after a transient failure (e.g. a connection reset). `--inprocess`
skips HTTP: the same pipeline on `InferenceClient(...).as_sdg_backend()` (the engine still batches threads).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from nemotron_jax.sdg.runner import PipelineConfig, run_pipeline


def start_server(preset: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "nemotron_jax.cli", "serve", "--preset", preset, "--random-init",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("READY "):
            return proc, line.split()[1]
    raise SystemExit("server did not start")


def start_inprocess(preset: str):
    import jax

    from nemotron_jax.config import model_preset
    from nemotron_jax.inference.client import InferenceClient
    from nemotron_jax.model import init_params

    cfg = model_preset(preset)
    client = InferenceClient.from_params(init_params(cfg, jax.random.key(0)), cfg, model_name=preset)
    return client, client.as_sdg_backend()


def pipeline(model: object, n: int, k: int, max_tokens: int, concurrency: int, seed: int,
             out: str) -> PipelineConfig:
    topics = [f"t{i}" for i in range(n)]
    return PipelineConfig(
        name="bench", out_dir=out, seed=seed, concurrency=concurrency, cache=None,
        models={"generator": model},
        stages=[{"type": "seed", "items": topics}, {"type": "to_prompt", "template": "About {topic}"},
                {"type": "responses", "k": k, "max_tokens": max_tokens, "temperature": 0.8}])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="toy-tiny")
    p.add_argument("--items", type=int, default=96)
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--inprocess", action="store_true", help="in-process backend instead of the HTTP server")
    p.add_argument("--no-keep-alive", action="store_true", help="a new HTTP connection per request")
    args = p.parse_args()
    if args.inprocess:
        proc, model = start_inprocess(args.preset)
        where = "in-process"
    else:
        proc, where = start_server(args.preset)
        model = {"backend": "openai", "base_url": where, "model": args.preset, "max_in_flight": 256,
                 "keep_alive": not args.no_keep_alive}
    try:
        print(f"{where} preset={args.preset} items={args.items} k={args.k} max_tokens={args.max_tokens} "
              f"keep_alive={not args.no_keep_alive}")
        print("| concurrency | items/s | wall s | retries |\n|---|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            c = 1
            while c <= max(args.concurrency):
                warm = pipeline(model, 4 * c, args.k, args.max_tokens, c, 1000 + c,
                                os.path.join(tmp, f"warm{c}"))
                run_pipeline(warm, progress=False)
                c *= 2
            for c in args.concurrency:
                cfg = pipeline(model, args.items, args.k, args.max_tokens, c, c,
                               os.path.join(tmp, f"run{c}"))
                t0 = time.perf_counter()
                res = run_pipeline(cfg, progress=False)
                dt = time.perf_counter() - t0
                retries = res.clients["generator"]["retries"]
                print(f"| {c} | {res.counts['responses'] / dt:.1f} | {dt:.1f} | {retries} |", flush=True)
    finally:
        if args.inprocess:
            proc.close()
        else:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
