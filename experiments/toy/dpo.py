"""Toy DPO from general SFT on the toy world's oracle-vs-flawed pairs; the SFT term on chosen responses stays on
(at this scale DPO without it degrades accuracy). Reference log-probs are computed once and cached."""

from nemotron_jax import config as C

DATA = "runs/toy/data"
TOKENIZER = "runs/toy_pretrain/tokenizer.model"

CONFIG = C.Experiment(
    name="toy_dpo",
    model=C.toy_small(vocab_size=4096, max_seq_len=256),
    data=C.PreferenceData(paths=(f"{DATA}/preference_pairs.jsonl",), tokenizer=TOKENIZER),
    batch=C.BatchConfig(global_batch=16, seq_len=256, micro_batch=8),
    loss=C.DPO(beta=0.1, sft_weight=0.05, reference="cached"),
    optim=C.AdamW(lr=1e-4, min_lr=1e-4, schedule="constant", warmup_steps=5, weight_decay=0.0),
    steps=60,
    init_from="runs/toy_sft_general",
    checkpoint=C.CheckpointConfig(save_every=60, keep=1),
    run_dir="runs/toy_dpo",
)

if __name__ == "__main__":
    from nemotron_jax.train import run

    print(run(CONFIG).status)
