"""Nemotron-4 340B pretraining (SPEC §2): 8T tokens of the 70/15/15 blend on 768 DGX H100 nodes (6144 GPUs).

Layout: tensor 8 x pipeline 12 (interleaved, 8 virtual stages: 1 layer per chunk) x data -1 (= 64 on 6144 GPUs),
sequence parallel, distributed optimizer. Batch ramp 768 -> 1536 -> 2304 sequences of 4096 tokens, switching after
200B and 400B tokens (the paper's table). The paper grew data parallelism with the batch (DP 16 -> 32 -> 64); here
one job keeps DP 64 and the ramp is gradient accumulation of 12-row microbatches per replica (A = 1 -> 2 -> 3), each
a 12-microbatch interleaved pipeline pass (bubble 11 / (8*12 + 11) = 10%). Optimiser: NeMo's recipe defaults.
Paths: set NEMOTRON_DATA to the folder holding the tokenized blend's sources and the 256K tokenizer.
"""

import os

from nemotron_jax import config as C

DATA = os.environ.get("NEMOTRON_DATA", "/data/nemotron4")

CONFIG = C.Experiment(
    name="nemotron4_340b_pretrain",
    model=C.nemotron4_340b(),
    parallel=C.ParallelConfig(data=-1, tensor=8, pipeline=12, virtual_stages=8, microbatches=12,
                              sequence_parallel=True, shard_optimizer=True),
    data=C.nemotron4_blend(english=f"{DATA}/english/*.jsonl", multilingual=f"{DATA}/multilingual/*.jsonl",
                           code=f"{DATA}/code/*.jsonl", tokenizer=f"{DATA}/tokenizer_256k.model", worker_count=8),
    batch=C.BatchConfig(global_batch=2304, seq_len=4096, micro_batch=12, ramp="0:768 200B:1536 400B:2304",
                        ramp_unit="tokens"),
    optim=C.OptimConfig(lr=1e-4, min_lr=1e-5, schedule="cosine", warmup_steps=500, b1=0.9, b2=0.95, eps=1e-5,
                        weight_decay=0.1, clip_norm=1.0),
    train_tokens=8 * 10**12,
    checkpoint=C.CheckpointConfig(save_every=500, keep=3),
    logging=C.LoggingConfig(every=1),
    run_dir="runs/nemotron4_340b_pretrain",
)

if __name__ == "__main__":
    from nemotron_jax.train import run

    run(CONFIG)
