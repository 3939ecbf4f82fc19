"""RPO, 3 iterations after DPO (SPEC §5): 300K pairs with reward-model rewards, eta 1, LR 3e-7, beta in [1e-3, 1],
SFT weight 1e-5; iteration i starts from and references iteration i-1 (the first from the DPO model). Pairs without
rewards are scored by the 15B reward model when the dataset is built. Batch size is not published: 256 as DPO.

The 15B variant: one 8-GPU node (FSDP 8), the 340B files' data and hyperparameters."""

from nemotron_jax import config as C
from nemotron_jax.train.alignment import run_rpo

RPO_PAIRS = 300_000

CONFIG = C.Experiment(
    name="nemotron4_15b_rpo",
    model=C.nemotron4_15b(),
    parallel=C.ParallelConfig(data=1, fsdp=8),
    data=C.PreferenceData(paths=("data/preference/rpo.jsonl",), tokenizer="tokenizers/nemotron4_256k.model",
                          reward_model="runs/nemotron4_15b_reward"),
    batch=C.BatchConfig(global_batch=256, seq_len=4096, micro_batch=2),
    loss=C.RPO(beta=0.03, eta=1.0, sft_weight=1e-5, iterations=3, reference="cached"),
    optim=C.AdamW(lr=3e-7, min_lr=3e-7, schedule="constant", warmup_steps=0, weight_decay=0.0),
    train_samples=RPO_PAIRS,
    init_from="runs/nemotron4_15b_dpo",
    checkpoint=C.CheckpointConfig(save_every=100),
)

if __name__ == "__main__":
    run_rpo(CONFIG)
