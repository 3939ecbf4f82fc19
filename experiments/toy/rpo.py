"""Toy RPO x3 from DPO: the pairs' rule-based rewards (or the toy reward model's scores) as r*, each iteration
starting from and referencing the previous one (runs/toy_rpo/iter{1,2,3})."""

from nemotron_jax import config as C
from nemotron_jax.train.alignment import run_rpo

DATA = "runs/toy/data"
TOKENIZER = "runs/toy_pretrain/tokenizer.model"

CONFIG = C.Experiment(
    name="toy_rpo",
    model=C.toy_small(vocab_size=4096, max_seq_len=256),
    data=C.PreferenceData(paths=(f"{DATA}/preference_pairs.jsonl",), tokenizer=TOKENIZER),
    batch=C.BatchConfig(global_batch=16, seq_len=256, micro_batch=8),
    loss=C.RPO(beta=0.1, eta=1.0, sft_weight=0.05, iterations=3, reference="cached"),
    optim=C.AdamW(lr=1e-4, min_lr=1e-4, schedule="constant", warmup_steps=5, weight_decay=0.0),
    steps=40,
    init_from="runs/toy_dpo",
    checkpoint=C.CheckpointConfig(save_every=40, keep=1),
    run_dir="runs/toy_rpo",
)

if __name__ == "__main__":
    print([r.status for r in run_rpo(CONFIG)])
