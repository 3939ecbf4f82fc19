"""DPO after general SFT (SPEC §5): 160K preference pairs, 1 epoch, global batch 256, constant LR in [3e-8, 3e-7],
beta in [3e-4, 3e-3], plus a weighted SFT loss on chosen responses (weight in [1e-5, 1e-3]). The reference is the
SFT model; its log-probs are computed once and cached.

The 15B variant: one 8-GPU node (FSDP 8), the 340B files' data and hyperparameters."""

from nemotron_jax import config as C
from nemotron_jax.train.loop import run

DPO_PAIRS = 160_000

CONFIG = C.Experiment(
    name="nemotron4_15b_dpo",
    model=C.nemotron4_15b(),
    parallel=C.ParallelConfig(data=1, fsdp=8),
    data=C.PreferenceData(paths=("data/preference/dpo.jsonl",), tokenizer="tokenizers/nemotron4_256k.model"),
    batch=C.BatchConfig(global_batch=256, seq_len=4096, micro_batch=2),
    loss=C.DPO(beta=3e-3, sft_weight=1e-5, reference="cached"),
    optim=C.AdamW(lr=1e-7, min_lr=1e-7, schedule="constant", warmup_steps=0, weight_decay=0.0),
    train_samples=DPO_PAIRS,
    init_from="runs/nemotron4_15b_sft_general",
    checkpoint=C.CheckpointConfig(save_every=100),
)

if __name__ == "__main__":
    run(CONFIG)
