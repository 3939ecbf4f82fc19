"""Toy pretraining: toy-small (4 layers, d 256, 4K vocab; ~5M params) on the toy world's 70/15/15 corpus, on a CPU.

    python experiments/toy/pretrain.py            # or: nemotron-jax train experiments/toy/pretrain.py steps=50

300 steps take ~4.5 CPU-minutes (26 min wall on the shared, heavily loaded 2-core machine). Trains a 4K
SentencePiece tokenizer on the toy world first (once), then pretrains with a cosine schedule and a small batch
ramp, and writes runs/toy_pretrain/{metrics.jsonl, loss_curve.png, checkpoints/}. Rerunning resumes from the newest
checkpoint.
"""

from pathlib import Path

from nemotron_jax import config as C
from nemotron_jax.data.toyworld.export import pretrain_data

RUN_DIR = "runs/toy_pretrain"
TOKENIZER = f"{RUN_DIR}/tokenizer.model"
WORLD = C.ToyWorldConfig(seed=0, pretrain_chars=3_000_000, tokenizer_chars=1_000_000)

CONFIG = C.Experiment(
    name="toy_pretrain",
    model=C.toy_small(vocab_size=4096, max_seq_len=128),  # the toy world supports ~5.8K BPE pieces at most
    data=pretrain_data(WORLD, TOKENIZER, prefetch_batches=2),
    batch=C.BatchConfig(global_batch=16, seq_len=128, micro_batch=8, ramp="0:8 800:16"),  # 8 -> 16 sequences
    optim=C.OptimConfig(lr=3e-3, min_lr=3e-4, schedule="cosine", warmup_steps=30, weight_decay=0.1),
    steps=300,
    checkpoint=C.CheckpointConfig(save_every=100, keep=2),
    logging=C.LoggingConfig(every=10),
    run_dir=RUN_DIR,
)


def prepare(exp: C.Experiment) -> None:
    """Train the toy tokenizer (vocab = the model's) unless it exists; `nemotron-jax train` calls this first."""
    path = Path(exp.data.tokenizer)
    if path.exists():
        return
    from nemotron_jax.data.tokenizer import Tokenizer
    from nemotron_jax.data.toyworld.export import world_from_config

    texts = world_from_config(WORLD).tokenizer_texts(WORLD.tokenizer_chars)
    Tokenizer.train(texts, vocab_size=exp.model.vocab_size).save(path)


if __name__ == "__main__":
    from nemotron_jax.train import run

    prepare(CONFIG)
    result = run(CONFIG)
    print(f"{result.status} at step {result.step}; loss curve: {result.run_dir / 'loss_curve.png'}")
