"""Server throughput and latency at 1, 8 and 32 concurrent clients (the batching queue at work).

    python benchmarks/serve_load.py [--preset bench-cpu] [--concurrency 1 8 32] [--max-tokens 32]

Starts `nemotron-jax serve --preset P --random-init` on a free loopback port in a subprocess, then for each
concurrency level c runs c client threads, each sending `--rounds` completion requests back to back (seeded
sampling, eos ignored so every request makes exactly --max-tokens tokens). A warm-up pass at each level compiles
the batch shapes first (one request per batch bucket, then --warmup-runs unmeasured runs of the level itself, which
compile the join / grow / shrink programs its request mix meets: each new combination of batch sizes compiles once,
0.2-0.3 s on toy-tiny). Prints requests/s, tokens/s, p50/p95 latency
and the mean number of live rows per decode chunk.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def post(port: int, body: dict) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = json.loads(resp.read())
    conn.close()
    if resp.status != 200:
        raise RuntimeError(out)
    return out


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/health")
    out = json.loads(conn.getresponse().read())
    conn.close()
    return out


def run_level(port: int, clients: int, rounds: int, max_tokens: int) -> dict:
    """c clients x rounds requests; returns throughput and latency figures."""
    lat: list[float] = []
    lock = threading.Lock()

    def client(i: int) -> int:
        tokens = 0
        for r in range(rounds):
            body = {"prompt": f"Client {i} asks question {r}:", "max_tokens": max_tokens, "temperature": 0.8,
                    "seed": i * 1000 + r, "ignore_eos": True}
            t0 = time.perf_counter()
            out = post(port, body)
            with lock:
                lat.append(time.perf_counter() - t0)
            tokens += out["usage"]["completion_tokens"]
        return tokens

    before = health(port)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        tokens = sum(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    after = health(port)
    chunks = after["chunks"] - before["chunks"]
    lat.sort()
    return {"requests_s": len(lat) / wall, "tokens_s": tokens / wall, "p50_s": statistics.median(lat),
            "p95_s": lat[min(len(lat) - 1, int(0.95 * len(lat)))],
            "rows_per_chunk": (after["chunk_rows"] - before["chunk_rows"]) / max(chunks, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="bench-cpu")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--rounds", type=int, default=4, help="requests per client per level")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--warmup-runs", type=int, default=3, help="unmeasured runs of each level first")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    args = ap.parse_args()

    cmd = [sys.executable, "-m", "nemotron_jax.cli", "serve", "--preset", args.preset, "--random-init", "--port", "0",
           "--max-batch", str(max(args.concurrency)), "--batch-wait-ms", str(args.batch_wait_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("READY"):
            line = proc.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1].split("/")[0])
        print(f"server: {args.preset} random init, max_tokens {args.max_tokens}, batch wait {args.batch_wait_ms} ms")
        base = None
        for b in sorted({1 << i for i in range(max(args.concurrency).bit_length())}):
            # warm-up: one request with n=b rows compiles exactly the batch bucket b
            post(port, {"prompt": "Client 0 asks question 0:", "max_tokens": args.max_tokens, "n": b, "seed": 0,
                        "ignore_eos": True})
        for c in args.concurrency:
            for _ in range(args.warmup_runs):  # compiles the join / grow / shrink shapes this level's mix meets
                run_level(port, c, args.rounds, args.max_tokens)
            r = run_level(port, c, args.rounds, args.max_tokens)
            base = base or r["requests_s"]
            print(f"{c:3d} clients: {r['requests_s']:7.2f} req/s ({r['requests_s'] / base:5.1f}x of 1 client), "
                  f"{r['tokens_s']:8.1f} tok/s, latency p50 {r['p50_s'] * 1e3:7.0f} ms p95 {r['p95_s'] * 1e3:7.0f} ms, "
                  f"{r['rows_per_chunk']:.1f} rows/decode chunk", flush=True)
    finally:
        proc.terminate()
        proc.wait(60)


if __name__ == "__main__":
    main()
