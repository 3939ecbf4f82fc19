"""Nemotron-4 15B pretraining on one 8-GPU node (H100/H200 80 GB+): the 70/15/15 blend, 8T tokens.

Layout: FSDP over the node's 8 GPUs (parameters, gradients and Adam state sharded) with full rematerialisation;
`nemotron-jax plan` puts it at ~55 GB per GPU. The paper trained 15B on many nodes; one node is the smallest layout
that holds it and shows the recipe end to end. Batch: Megatron's linear ramp (--rampup-batch-size 256 128 5000000):
256 sequences of 4096, +128 every 2.5M samples, reaching 512 after 5M samples (~20B tokens); one row per GPU per
accumulation microbatch.
"""

import os

from nemotron_jax import config as C

DATA = os.environ.get("NEMOTRON_DATA", "/data/nemotron4")

CONFIG = C.Experiment(
    name="nemotron4_15b_pretrain",
    model=C.nemotron4_15b(),
    parallel=C.ParallelConfig(data=1, fsdp=-1),
    data=C.nemotron4_blend(english=f"{DATA}/english/*.jsonl", multilingual=f"{DATA}/multilingual/*.jsonl",
                           code=f"{DATA}/code/*.jsonl", tokenizer=f"{DATA}/tokenizer_256k.model", worker_count=4),
    batch=C.BatchConfig(global_batch=512, seq_len=4096, micro_batch=1, ramp_start=256, ramp_increment=128,
                        ramp_samples=5_000_000),
    optim=C.OptimConfig(lr=3e-4, min_lr=3e-5, schedule="cosine", warmup_steps=500, b1=0.9, b2=0.95, eps=1e-5,
                        weight_decay=0.1, clip_norm=1.0),
    train_tokens=8 * 10**12,
    checkpoint=C.CheckpointConfig(save_every=500, keep=3),
    logging=C.LoggingConfig(every=1),
    run_dir="runs/nemotron4_15b_pretrain",
)

if __name__ == "__main__":
    from nemotron_jax.train import run

    run(CONFIG)
