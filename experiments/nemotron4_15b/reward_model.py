"""A Nemotron-4-15B reward model (SPEC §3): the base model's trunk + a 5-attribute linear head with bias, regression on
HelpSteer2 (masked MSE), 2 epochs, global batch 128. LR is not published: 2e-6 constant (a 70B recipe's value).

The 15B variant: one 8-GPU node (FSDP 8), the 340B files' data and hyperparameters."""

from nemotron_jax import config as C
from nemotron_jax.train.loop import run

HELPSTEER2_TRAIN_ROWS = 20_324  # (prompt, response) rows in HelpSteer2's train split

CONFIG = C.Experiment(
    name="nemotron4_15b_reward",
    model=C.nemotron4_15b(),
    parallel=C.ParallelConfig(data=1, fsdp=8),
    data=C.HelpSteerData(paths=("data/helpsteer2/train.jsonl",), tokenizer="tokenizers/nemotron4_256k.model"),
    batch=C.BatchConfig(global_batch=128, seq_len=4096, micro_batch=2),
    loss=C.RewardRegression(num_attributes=5, lm_init_from="runs/nemotron4_15b_continued_pretrain"),
    optim=C.AdamW(lr=2e-6, min_lr=2e-6, schedule="constant", warmup_steps=10, weight_decay=0.0),
    train_samples=2 * HELPSTEER2_TRAIN_ROWS,
    checkpoint=C.CheckpointConfig(save_every=50),
)

if __name__ == "__main__":
    run(CONFIG)
