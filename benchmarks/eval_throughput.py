"""Evaluation throughput on this machine: multiple-choice questions/s (bucketed log-likelihood through
model.forward) and generative examples/s (greedy, through the in-process inference client), toy-small preset.

    python benchmarks/eval_throughput.py [--preset toy-small] [--mc 256] [--arc 32] [--gen 32] [--max-tokens 64]

Random weights: throughput does not depend on what the model knows. Each figure is measured on a second pass,
after the first pass has compiled every shape.
"""

from __future__ import annotations

import argparse
import random
import time

import jax

from nemotron_jax.config import model_preset
from nemotron_jax.eval import multiple_choice as mc
from nemotron_jax.eval.backends import CompletionsGenerator
from nemotron_jax.eval.generative import MathItem, evaluate_gsm8k
from nemotron_jax.eval.scoring import ModelScorer, compiled_shapes
from nemotron_jax.model import init_params

WORDS = ("river apple seven market light stone garden quickly number table forest cloud copper signal "
         "bridge winter orange silent letter motor").split()


def _sentence(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def mc_items(n: int, seed: int = 0) -> list[mc.MCItem]:
    rng = random.Random(seed)
    rows = [{"question": _sentence(rng, 8, 30) + "?", "choices": [_sentence(rng, 1, 6) for _ in range(4)],
             "answer": rng.randrange(4), "subject": f"s{i % 5}"} for i in range(n)]
    return [mc.parse_mmlu(r, f"synthetic:{i}") for i, r in enumerate(rows)]


def arc_items(n: int, seed: int = 2) -> list[mc.MCItem]:
    """ARC-shaped: the choices are texts, so every choice is its own row (no shared-input saving)."""
    rng = random.Random(seed)
    rows = [{"question": _sentence(rng, 8, 30) + "?", "answerKey": "A",
             "choices": {"text": [_sentence(rng, 1, 6) for _ in range(4)], "label": list("ABCD")}} for _ in range(n)]
    return [mc.parse_arc(r, f"synthetic:{i}") for i, r in enumerate(rows)]


def math_items(n: int, seed: int = 1) -> list[MathItem]:
    rng = random.Random(seed)
    return [MathItem(f"{_sentence(rng, 10, 25)}: what is {a} + {b}?", str(a + b), f"#### {a + b}")
            for a, b in ((rng.randrange(100), rng.randrange(100)) for _ in range(n))]


def timed(fn) -> float:
    fn()  # compile every shape
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="toy-small")
    ap.add_argument("--mc", type=int, default=256, help="multiple-choice questions (4 choices each)")
    ap.add_argument("--arc", type=int, default=32, help="ARC-shaped questions (choice texts)")
    ap.add_argument("--k", type=int, default=0, help="k-shot for multiple choice")
    ap.add_argument("--gen", type=int, default=32, help="generative examples")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()

    from nemotron_jax.inference.byte_tokenizer import ByteTokenizer
    from nemotron_jax.inference.client import InferenceClient

    cfg = model_preset(args.preset)
    params = init_params(cfg, jax.random.key(0))
    tok = ByteTokenizer(cfg.vocab_size)
    print(f"{args.preset}: {jax.devices()[0].device_kind}, {jax.device_count()} device(s)")

    items = mc_items(args.mc)
    scorer = ModelScorer(params, cfg, tok)
    secs = timed(lambda: mc.evaluate_mc(scorer, items, k=args.k))
    print(f"multiple choice, MMLU letters ({args.k}-shot, 4 choices): {args.mc / secs:.1f} questions/s, "
          f"{4 * args.mc / secs:.1f} continuations/s ({compiled_shapes()} compiled shapes so far)")
    arc = arc_items(args.arc)
    secs = timed(lambda: mc.evaluate_mc(scorer, arc, k=args.k))
    print(f"multiple choice, ARC choice texts ({args.k}-shot, 4 choices): {args.arc / secs:.1f} questions/s, "
          f"{4 * args.arc / secs:.1f} continuations/s ({compiled_shapes()} compiled shapes so far)")

    gens = math_items(args.gen)
    with InferenceClient.from_params(params, cfg, tok) as client:
        gen = CompletionsGenerator.in_process(client, batch=16, concurrency=4)
        secs = timed(lambda: evaluate_gsm8k(gen, gens, max_tokens=args.max_tokens))
    print(f"generative (greedy, up to {args.max_tokens} new tokens): {args.gen / secs:.2f} examples/s")


if __name__ == "__main__":
    main()
