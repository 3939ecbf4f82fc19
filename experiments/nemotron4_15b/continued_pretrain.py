"""Nemotron-4 15B continued pretraining on one 8-GPU node: the 340B recipe's re-weighted blend and steep decay.

Differs from pretrain.py: init_from its final checkpoint, the continued-pretraining blend, a constant batch of 512,
LR from pretraining's floor (3e-5) decaying to 0 along 1 - sqrt after a short stable phase, 1T tokens.
"""

import dataclasses
from pathlib import Path

from nemotron_jax import config as C
from nemotron_jax.train.cli import load_experiment_module

HERE = Path(__file__).parent
PRETRAIN = load_experiment_module(HERE / "pretrain.py").CONFIG
BLEND = load_experiment_module(HERE.parent / "nemotron4_340b" / "continued_pretrain.py").BLEND

CONFIG = dataclasses.replace(
    PRETRAIN,
    name="nemotron4_15b_continued_pretrain",
    data=BLEND,
    batch=C.BatchConfig(global_batch=512, seq_len=4096, micro_batch=1),
    optim=dataclasses.replace(PRETRAIN.optim, lr=3e-5, min_lr=0.0, schedule="wsd", warmup_steps=50,
                              wsd_decay_fraction=0.8, wsd_decay_shape="sqrt"),
    train_tokens=1 * 10**12,
    init_from="runs/nemotron4_15b_pretrain/checkpoints",
    run_dir="runs/nemotron4_15b_continued_pretrain",
)

if __name__ == "__main__":
    from nemotron_jax.train import run

    run(CONFIG)
