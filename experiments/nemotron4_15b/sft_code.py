"""Stage 1 of staged SFT (SPEC §5): code SFT on ~800K synthetic coding samples, 1 epoch, constant LR 3e-7, global
batch 128, loss on assistant tokens only; starts from the base model.

The 15B variant: one 8-GPU node (FSDP 8), the 340B files' data and hyperparameters."""

from nemotron_jax import config as C
from nemotron_jax.train.loop import run

CODE_SFT_SAMPLES = 800_000

CONFIG = C.Experiment(
    name="nemotron4_15b_sft_code",
    model=C.nemotron4_15b(),
    parallel=C.ParallelConfig(data=1, fsdp=8),
    data=C.ChatData(paths=("data/sft/code.jsonl",), tokenizer="tokenizers/nemotron4_256k.model"),
    batch=C.BatchConfig(global_batch=128, seq_len=4096, micro_batch=2),
    loss=C.SFT(stage="code"),
    optim=C.AdamW(lr=3e-7, min_lr=3e-7, schedule="constant", warmup_steps=0, weight_decay=0.0),
    train_samples=CODE_SFT_SAMPLES,
    init_from="runs/nemotron4_15b_continued_pretrain",
    checkpoint=C.CheckpointConfig(save_every=500),
)

if __name__ == "__main__":
    run(CONFIG)
