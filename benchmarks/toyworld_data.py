"""Toy-world data generation speed, and token counts under a tokenizer trained on it (figures for BENCHMARKS.md).

    python benchmarks/toyworld_data.py [--chars 4000000] [--vocab 4096]
"""

from __future__ import annotations

import argparse
import statistics
import time

from nemotron_jax.data.toyworld import ToyWorld


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", type=int, default=4_000_000)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tw = ToyWorld(args.seed)

    docs, dt = _timed(lambda: list(tw.documents(args.chars)))
    n = sum(len(d["text"]) for d in docs)
    print(f"corpus: {n / 1e6:.1f} MB in {dt:.2f} s = {n / dt / 1e6:.2f} MB/s ({len(docs)} documents)")

    stages = {
        "general_sft": lambda: tw.general_sft(4000), "code_sft": lambda: tw.code_sft(2000),
        "preference_pairs": lambda: tw.preference_pairs(1000), "helpsteer": lambda: tw.helpsteer(2000),
        "eval_ifeval": lambda: tw.eval_ifeval(100), "rm_pairs": lambda: tw.rm_pairs(200),
    }
    records = {}
    for name, fn in stages.items():
        records[name], dt = _timed(fn)
        print(f"{name}: {len(records[name])} records in {dt:.2f} s = {len(records[name]) / dt:,.0f} records/s")

    try:
        from nemotron_jax.data.tokenizer import Tokenizer
    except ImportError:
        print("tokenizer: nemotron_jax.data.tokenizer not available; skipping token counts")
        return
    tok, dt = _timed(lambda: Tokenizer.train(tw.tokenizer_texts(1_000_000), vocab_size=args.vocab))
    print(f"tokenizer: vocab {args.vocab} trained on 1 MB in {dt:.1f} s")
    sample = docs[:2000]
    for source in ("english", "lingo", "code"):
        texts = [d["text"] for d in sample if d["source"] == source]
        toks = sum(len(tok.encode(t)) for t in texts)
        print(f"  {source}: {sum(map(len, texts)) / toks:.2f} chars/token")
    for name in ("general_sft", "code_sft"):
        lens = [sum(len(tok.encode(m["content"])) for m in r["messages"]) + 8 for r in records[name]]
        print(f"  {name}: tokens per chat (with template) mean {statistics.mean(lens):.1f}, max {max(lens)}")


if __name__ == "__main__":
    main()
