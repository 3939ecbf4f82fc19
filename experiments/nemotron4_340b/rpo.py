"""RPO, 3 iterations after DPO (SPEC §5): 300K pairs with reward-model rewards, eta 1, LR 3e-7, beta in [1e-3, 1],
SFT weight 1e-5; iteration i starts from and references iteration i-1 (the first from the DPO model). Pairs without
rewards are scored by the 340B reward model when the dataset is built. Batch size is not published: 256 as DPO."""

from nemotron_jax import config as C
from nemotron_jax.train.alignment import run_rpo

RPO_PAIRS = 300_000

CONFIG = C.Experiment(
    name="nemotron4_340b_rpo",
    model=C.nemotron4_340b(),
    # TP 8 x PP 12 x DP 8 on 96 nodes (768 H100 80GB): 62 GB per device by `nemotron-jax plan --devices 768`
    parallel=C.ParallelConfig(data=-1, tensor=8, pipeline=12, virtual_stages=2, microbatches=16,
                              sequence_parallel=True),
    data=C.PreferenceData(paths=("data/preference/rpo.jsonl",), tokenizer="tokenizers/nemotron4_256k.model",
                          reward_model="runs/nemotron4_340b_reward"),
    batch=C.BatchConfig(global_batch=256, seq_len=4096, micro_batch=16),
    loss=C.RPO(beta=0.03, eta=1.0, sft_weight=1e-5, iterations=3, reference="cached"),
    optim=C.AdamW(lr=3e-7, min_lr=3e-7, schedule="constant", warmup_steps=0, weight_decay=0.0),
    train_samples=RPO_PAIRS,
    init_from="runs/nemotron4_340b_dpo",
    checkpoint=C.CheckpointConfig(save_every=100),
)

if __name__ == "__main__":
    run_rpo(CONFIG)
