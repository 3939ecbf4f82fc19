"""Nemotron-4 340B continued pretraining (SPEC §2): 1T more tokens on a re-weighted blend, steep LR decay.

Differs from pretrain.py: starts from its final checkpoint (params only; fresh optimizer); the blend up-weights
high-quality sources and adds a small share of QA-style alignment examples; the batch is constant at 2304; the LR
schedule favours a steep decay slope over a high magnitude -- it starts at pretraining's floor (1e-5) and, after a
short stable phase, decays to 0 along 1 - sqrt (steepest at the start of the decay). The exact weights and LR
are [open] in the paper; these are this project's defaults.
"""

import dataclasses
import os
from pathlib import Path

from nemotron_jax import config as C
from nemotron_jax.config import TextSource
from nemotron_jax.train.cli import load_experiment_file

PRETRAIN = load_experiment_file(Path(__file__).with_name("pretrain.py"))

DATA = os.environ.get("NEMOTRON_DATA", "/data/nemotron4")
BLEND = C.TextData(
    sources=(TextSource(f"{DATA}/english_high_quality/*.jsonl", weight=0.45, name="english_hq"),
             TextSource(f"{DATA}/english/*.jsonl", weight=0.20, name="english"),
             TextSource(f"{DATA}/multilingual/*.jsonl", weight=0.12, name="multilingual"),
             TextSource(f"{DATA}/code/*.jsonl", weight=0.15, name="code"),
             TextSource(f"{DATA}/qa_alignment/*.jsonl", weight=0.08, name="qa_alignment")),
    tokenizer=f"{DATA}/tokenizer_256k.model", worker_count=8, seed=1)

CONFIG = dataclasses.replace(
    PRETRAIN,
    name="nemotron4_340b_continued_pretrain",
    data=BLEND,
    batch=C.BatchConfig(global_batch=2304, seq_len=4096, micro_batch=12),
    optim=dataclasses.replace(PRETRAIN.optim, lr=1e-5, min_lr=0.0, schedule="wsd", warmup_steps=50,
                              wsd_decay_fraction=0.8, wsd_decay_shape="sqrt"),
    train_tokens=1 * 10**12,
    init_from="runs/nemotron4_340b_pretrain/checkpoints",
    run_dir="runs/nemotron4_340b_continued_pretrain",
)

if __name__ == "__main__":
    from nemotron_jax.train import run

    run(CONFIG)
