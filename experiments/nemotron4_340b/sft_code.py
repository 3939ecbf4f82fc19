"""Stage 1 of staged SFT (SPEC §5): code SFT on ~800K synthetic coding samples, 1 epoch, constant LR 3e-7, global
batch 128, loss on assistant tokens only; starts from the base model."""

from nemotron_jax import config as C
from nemotron_jax.train.loop import run

CODE_SFT_SAMPLES = 800_000

CONFIG = C.Experiment(
    name="nemotron4_340b_sft_code",
    model=C.nemotron4_340b(),
    # TP 8 x PP 12 x DP 8 on 96 nodes (768 H100 80GB): 62 GB per device by `nemotron-jax plan --devices 768`
    parallel=C.ParallelConfig(data=-1, tensor=8, pipeline=12, virtual_stages=2, microbatches=16,
                              sequence_parallel=True),
    data=C.ChatData(paths=("data/sft/code.jsonl",), tokenizer="tokenizers/nemotron4_256k.model"),
    batch=C.BatchConfig(global_batch=128, seq_len=4096, micro_batch=16),
    loss=C.SFT(stage="code"),
    optim=C.AdamW(lr=3e-7, min_lr=3e-7, schedule="constant", warmup_steps=0, weight_decay=0.0),
    train_samples=CODE_SFT_SAMPLES,
    init_from="runs/nemotron4_340b_continued_pretrain",
    checkpoint=C.CheckpointConfig(save_every=500),
)

if __name__ == "__main__":
    run(CONFIG)
