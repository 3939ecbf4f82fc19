"""Stage 2 of staged SFT (SPEC §5): general SFT on a 200K-sample blend that replays 2% of the code-SFT samples
(against forgetting), 3 epochs, global batch 128, LR in [1e-7, 5e-7] (3e-7 here); starts from code SFT.

The 15B variant: one 8-GPU node (FSDP 8), the 340B files' data and hyperparameters."""

from nemotron_jax import config as C
from nemotron_jax.train.loop import run

GENERAL_SFT_SAMPLES = 200_000

CONFIG = C.Experiment(
    name="nemotron4_15b_sft_general",
    model=C.nemotron4_15b(),
    parallel=C.ParallelConfig(data=1, fsdp=8),
    data=C.ChatData(paths=("data/sft/general.jsonl",), tokenizer="tokenizers/nemotron4_256k.model",
                    replay_path="data/sft/code.jsonl", replay_fraction=0.02),
    batch=C.BatchConfig(global_batch=128, seq_len=4096, micro_batch=2),
    loss=C.SFT(stage="general"),
    optim=C.AdamW(lr=3e-7, min_lr=3e-7, schedule="constant", warmup_steps=0, weight_decay=0.0),
    train_samples=3 * GENERAL_SFT_SAMPLES,
    init_from="runs/nemotron4_15b_sft_code",
    checkpoint=C.CheckpointConfig(save_every=500),
)

if __name__ == "__main__":
    run(CONFIG)
