"""Server throughput and latency at 1, 8 and 32 concurrent clients (the batching queue at work).

    python benchmarks/serve_load.py [--preset bench-cpu] [--concurrency 1 8 32] [--max-tokens 32]

Starts `nemotron-jax serve --preset P --random-init` on a free loopback port in a subprocess, then for each
concurrency level c runs c clients (threads, spread over --client-procs load-generator processes), each sending
completion requests back to back (seeded sampling, eos ignored so every request makes exactly --max-tokens tokens).
A warm-up pass at each level compiles the batch shapes first (one request per batch bucket, then at least
--warmup-runs unmeasured runs of --rounds requests per client, more until two in a row compile nothing: they
compile the join / grow / shrink programs its request mix meets, each new combination of batch sizes once,
0.1-0.3 s on toy-tiny). Then --repeats measured runs, each with enough requests per client to last about
--min-seconds at the warm-up's rate (4 requests from one client last ~40 ms on toy-tiny: too short to measure).
Prints the median run's requests/s, tokens/s, p50/p95 latency, mean number of live rows per decode chunk, the CPU
(in cores) the server and the load generator used, and the compiles during it (0: a measured run that compiled is
rerun, up to --max-extra-warmup times; a compile would dominate it), and the spread of the runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing as mp
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


def _client_proc(port: int, ids: list[int], rounds: int, max_tokens: int, go, out) -> None:
    """One load-generator process: a thread per client id, each sending `rounds` requests back to back."""
    lat: list[float] = []
    lock = threading.Lock()

    def client(i: int) -> int:
        tokens = 0
        for r in range(rounds):
            body = {"prompt": f"Client {i} asks question {r}:", "max_tokens": max_tokens, "temperature": 0.8,
                    "seed": i * 1000 + r, "ignore_eos": True}
            t0 = time.perf_counter()
            res = post(port, body)
            with lock:
                lat.append(time.perf_counter() - t0)
            tokens += res["usage"]["completion_tokens"]
        return tokens

    go.wait()
    cpu0, t0 = time.process_time(), time.perf_counter()  # perf_counter is CLOCK_MONOTONIC: one clock for all
    with ThreadPoolExecutor(len(ids)) as pool:
        tokens = sum(pool.map(client, ids))
    out.put({"lat": lat, "tokens": tokens, "start": t0, "end": time.perf_counter(),
             "cpu_s": time.process_time() - cpu0})


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux /proc)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_level(port: int, clients: int, rounds: int, max_tokens: int, procs: int = 1, server_pid: int = 0) -> dict:
    """c clients x rounds requests, the clients spread over up to `procs` processes (threads in each); returns
    throughput and latency figures, and the CPU use of the load generator and of the server."""
    ctx = mp.get_context("fork")  # the load generator imports no JAX: forking it is safe and quick
    go, out = ctx.Event(), ctx.Queue()
    groups = [g for g in (list(range(clients))[k::procs] for k in range(procs)) if g]
    workers = [ctx.Process(target=_client_proc, args=(port, g, rounds, max_tokens, go, out), daemon=True)
               for g in groups]
    for w in workers:
        w.start()
    before, server_cpu0 = health(port), _proc_cpu_s(server_pid)
    go.set()
    results = [out.get() for _ in workers]
    for w in workers:
        w.join()
    server_cpu = _proc_cpu_s(server_pid) - server_cpu0
    after = health(port)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    lat = sorted(x for r in results for x in r["lat"])
    tokens = sum(r["tokens"] for r in results)
    chunks = after["chunks"] - before["chunks"]
    return {"requests_s": len(lat) / wall, "tokens_s": tokens / wall, "p50_s": statistics.median(lat),
            "p95_s": lat[min(len(lat) - 1, int(0.95 * len(lat)))],
            "rows_per_chunk": (after["chunk_rows"] - before["chunk_rows"]) / max(chunks, 1),
            "compiles": after.get("compiles", 0) - before.get("compiles", 0),
            "client_cpu": sum(r["cpu_s"] for r in results) / wall,
            "client_cpu_max": max(r["cpu_s"] for r in results) / wall, "server_cpu": server_cpu / wall}


def measured_run(port: int, c: int, rounds: int, args: argparse.Namespace) -> dict:
    """One measured run; a run that still compiled counts as warm-up and is run again (a compile dominates it)."""
    for _ in range(1 + args.max_extra_warmup):
        r = run_level(port, c, rounds, args.max_tokens, args.client_procs, args.server_pid)
        if r["compiles"] == 0:
            break
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="bench-cpu")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--rounds", type=int, default=4, help="requests per client per level (at least)")
    ap.add_argument("--min-seconds", type=float, default=1.5,
                    help="each measured run sends enough rounds to last about this long (at the warm-up's rate)")
    ap.add_argument("--repeats", type=int, default=3, help="measured runs per level; the median one is reported")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--warmup-runs", type=int, default=3, help="unmeasured runs of each level first")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    ap.add_argument("--decode-chunk", type=int, default=None, help="the server's --decode-chunk (default: its own)")
    ap.add_argument("--max-extra-warmup", type=int, default=20,
                    help="more unmeasured runs, until two in a row compile nothing (/health counts compiles)")
    ap.add_argument("--client-procs", type=int, default=1,
                    help="load-generator processes the clients are spread over (one GIL each; 1 = all in one)")
    args = ap.parse_args()

    cmd = [sys.executable, "-m", "nemotron_jax.cli", "serve", "--preset", args.preset, "--random-init", "--port", "0",
           "--max-batch", str(max(args.concurrency)), "--batch-wait-ms", str(args.batch_wait_ms)]
    cmd += ["--decode-chunk", str(args.decode_chunk)] if args.decode_chunk else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    args.server_pid = proc.pid
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
            # compiles the join / grow / shrink shapes this level's mix meets: at least --warmup-runs runs, then on
            # until two runs in a row compile nothing (a compile, 0.1-0.3 s, inside the measured run dominates it)
            clean = 0
            for i in range(args.warmup_runs + args.max_extra_warmup):
                w = run_level(port, c, args.rounds, args.max_tokens, args.client_procs, proc.pid)
                clean = clean + 1 if w["compiles"] == 0 else 0
                if i + 1 >= args.warmup_runs and clean >= 2:
                    break
            # a 1-client run of 4 requests lasts ~40 ms on toy-tiny: size the runs by time, report the median
            rounds = max(args.rounds, math.ceil(args.min_seconds * w["requests_s"] / c))
            runs = [measured_run(port, c, rounds, args) for _ in range(args.repeats)]
            r = sorted(runs, key=lambda x: x["requests_s"])[len(runs) // 2]
            spread = f"runs {min(x['requests_s'] for x in runs):.1f}-{max(x['requests_s'] for x in runs):.1f}"
            base = base or r["requests_s"]
            print(f"{c:3d} clients: {r['requests_s']:7.2f} req/s ({r['requests_s'] / base:5.1f}x of 1 client), "
                  f"{r['tokens_s']:8.1f} tok/s, latency p50 {r['p50_s'] * 1e3:7.0f} ms p95 {r['p95_s'] * 1e3:7.0f} ms, "
                  f"{r['rows_per_chunk']:.1f} rows/decode chunk; CPU (cores): server {r['server_cpu']:.2f}, "
                  f"clients {r['client_cpu']:.2f} (busiest process {r['client_cpu_max']:.2f}); "
                  f"{r['compiles']} compiles; {c * rounds} requests a run, {spread} req/s", flush=True)
    finally:
        proc.terminate()
        proc.wait(60)


if __name__ == "__main__":
    main()
