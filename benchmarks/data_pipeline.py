"""Pretraining data pipeline throughput alone (tokens/s), on the toy world's 70/15/15 corpus.

    python benchmarks/data_pipeline.py [--chars 2000000] [--vocab 4096] [--seq-len 512] [--batch 16] [--seconds 4]

Prints tokens/s for: the tokenizer alone, packing alone, and the whole pipeline (sources -> tokenize -> pack ->
blend -> batch) from in-memory documents and from JSONL files, inline, with reader threads, and with grain worker
processes; plus the cost of restoring a saved iterator state. Compare with what training consumes (a 13M-param
toy model trains at roughly 5-20K tokens/s on this CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import grain
import pyarrow as pa
import pyarrow.parquet as pq

from nemotron_jax.config import TextData, TextSource
from nemotron_jax.data.packing import PackedDataset, lm_example
from nemotron_jax.data.pipelines import make_lm_iterator
from nemotron_jax.data.sources import MemorySource
from nemotron_jax.data.tokenizer import Tokenizer
from nemotron_jax.data.toyworld.export import source_texts

WEIGHTS = {"english": 0.70, "lingo": 0.15, "code": 0.15}


def _rate(fn, seconds: float) -> float:
    """Calls `fn()` (returns tokens produced) repeatedly for about `seconds`; tokens per second."""
    fn()  # warm-up (first batch pays for opening iterators, spawning workers)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += fn()
    return n / (time.perf_counter() - t0)


def _pipeline_rate(data: TextData, tok: Tokenizer, args, sources=None) -> float:
    t0 = time.perf_counter()
    it = make_lm_iterator(data, tok, batch_size=args.batch, seq_len=args.seq_len, sources=sources)
    next(it)
    startup = time.perf_counter() - t0
    rate = _rate(lambda: next(it)["inputs"].size, args.seconds)
    it.close()
    print(f"    (first batch after {startup:.2f} s)")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", type=int, default=2_000_000)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()

    corpora = {s: source_texts(s, int(args.chars * w)) for s, w in WEIGHTS.items()}
    all_docs = [d for docs in corpora.values() for d in docs]
    t0 = time.perf_counter()
    tok = Tokenizer.train(all_docs, vocab_size=args.vocab)
    print(f"corpus: {sum(map(len, all_docs)) / 1e6:.1f} MB, {len(all_docs)} documents; "
          f"tokenizer (vocab {args.vocab}) trained in {time.perf_counter() - t0:.1f} s")

    sample = all_docs[:2000]
    one = _rate(lambda: sum(len(tok.encode(d)) for d in sample), args.seconds)
    batched = _rate(lambda: sum(map(len, tok.encode_batch(sample, num_threads=2))), args.seconds)
    print(f"tokenizer encode, one text at a time: {one:,.0f} tokens/s")
    print(f"tokenizer encode_batch (2 threads):   {batched:,.0f} tokens/s")

    examples = [lm_example(ids) for ids in tok.encode_batch(sample, bos=True, eos=True)]

    def pack_all() -> int:
        ds = grain.MapDataset.source(examples).to_iter_dataset(grain.ReadOptions(num_threads=0))
        return sum(r["inputs"].size for r in PackedDataset(ds, seq_len=args.seq_len))
    print(f"packing alone (concat, T={args.seq_len}): {_rate(pack_all, args.seconds):,.0f} tokens/s")

    mem = {s: (MemorySource(docs, name=s), WEIGHTS[s]) for s, docs in corpora.items()}
    base = TextData(sources=tuple(TextSource(s, name=s, weight=w) for s, w in WEIGHTS.items()))
    print(f"whole pipeline, B={args.batch} x T={args.seq_len}:")
    for label, data in (("in-memory, inline", base.replace(prefetch_batches=0)),
                        ("in-memory, 1 prefetch thread (default)", base),
                        ("in-memory, 2 reader threads + prefetch", base.replace(read_threads=2))):
        print(f"  {label}: {_pipeline_rate(data, tok, args, mem):,.0f} tokens/s")

    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for s, docs in corpora.items():
            files[s] = os.path.join(tmp, f"{s}.jsonl")
            with open(files[s], "w") as f:
                f.writelines(json.dumps({"text": d}) + "\n" for d in docs)
        t0 = time.perf_counter()
        jsonl = TextData(sources=tuple(TextSource(files[s], name=s, weight=w) for s, w in WEIGHTS.items()))
        make_lm_iterator(jsonl, tok, batch_size=args.batch, seq_len=args.seq_len).close()
        print(f"  JSONL: indexing {len(all_docs)} lines took {time.perf_counter() - t0:.2f} s")
        print(f"  JSONL files, 1 prefetch thread: {_pipeline_rate(jsonl, tok, args):,.0f} tokens/s")
        for s, docs in corpora.items():  # the same corpus as parquet, 1000-row groups (read shuffled)
            pq.write_table(pa.table({"text": docs}), os.path.join(tmp, f"{s}.parquet"), row_group_size=1000)
        parquet = TextData(sources=tuple(TextSource(os.path.join(tmp, f"{s}.parquet"), name=s, weight=w)
                                         for s, w in WEIGHTS.items()))
        print(f"  parquet files (1000-row groups), prefetch thread: {_pipeline_rate(parquet, tok, args):,.0f} "
              f"tokens/s")
        print(f"  JSONL files, 2 grain workers: {_pipeline_rate(jsonl.replace(worker_count=2), tok, args):,.0f} "
              f"tokens/s")

        it = make_lm_iterator(jsonl.replace(prefetch_batches=0), tok, batch_size=args.batch, seq_len=args.seq_len)
        for _ in range(200):
            next(it)
        state = json.loads(json.dumps(it.get_state()))
        t0 = time.perf_counter()
        again = make_lm_iterator(jsonl.replace(prefetch_batches=0), tok, batch_size=args.batch,
                                 seq_len=args.seq_len, start_state=state)
        next(again)
        print(f"resume after 200 batches: state {len(json.dumps(state))} bytes of JSON, "
              f"restore + first batch {time.perf_counter() - t0:.2f} s")
        it.close(), again.close()


if __name__ == "__main__":
    main()
