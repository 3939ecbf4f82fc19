"""Every alignment stage on the paper's benchmarks (SPEC §6), in the paper's per-stage table shape.

    NEMOTRON_EVAL_DATA=/data/eval python experiments/nemotron4_15b/evaluate.py
    (or: nemotron-jax eval run --suite <this suite as JSON> --stage "Code SFT=runs/..." ... --paper)

Local files in the public datasets' shapes: MMLU (5-shot log-likelihood), GSM8K, HumanEval, IFEval, RewardBench.
"""

import os

from nemotron_jax.eval.suite import Benchmark

DATA = os.environ.get("NEMOTRON_EVAL_DATA", "data/eval")
SUITE = [
    Benchmark("MMLU", "mc", f"{DATA}/mmlu_test.jsonl", k=5, fewshot_path=f"{DATA}/mmlu_dev.jsonl", format="mmlu"),
    Benchmark("GSM8K", "gsm8k", f"{DATA}/gsm8k_test.jsonl"),
    Benchmark("HumanEval", "code", f"{DATA}/humaneval.jsonl"),
    Benchmark("IFEval", "ifeval", f"{DATA}/ifeval.jsonl"),
]
RUNS = "runs/nemotron4_15b"
CONFIG = {"benchmarks": SUITE, "stages": [
    ("Code SFT", f"{RUNS}_sft_code"), ("+ General SFT", f"{RUNS}_sft_general"), ("+ DPO", f"{RUNS}_dpo"),
    ("+ RPO (1)", f"{RUNS}_rpo/iter1"), ("+ RPO (2)", f"{RUNS}_rpo/iter2"), ("+ RPO (3)", f"{RUNS}_rpo/iter3")]}

if __name__ == "__main__":
    from pathlib import Path

    from nemotron_jax.eval.cli import model_loader, write_report
    from nemotron_jax.eval.suite import evaluate_stages

    out = Path(f"{RUNS}_eval")
    table = evaluate_stages([(n, model_loader(p, n)) for n, p in CONFIG["stages"]], SUITE, out_dir=out)
    write_report(out, table, paper=True)
