"""Toy reward model: the toy-pretrained trunk + a 5-attribute head, regression on the toy world's rule-labelled
HelpSteer rows (SPEC §3). Run experiments/toy/sft_code.py's prepare (or experiments/toy/data.py) first."""

from nemotron_jax import config as C

DATA = "runs/toy/data"
TOKENIZER = "runs/toy_pretrain/tokenizer.model"

CONFIG = C.Experiment(
    name="toy_reward_model",
    model=C.toy_small(vocab_size=4096, max_seq_len=256),
    data=C.HelpSteerData(paths=(f"{DATA}/helpsteer_train.jsonl",), tokenizer=TOKENIZER),
    batch=C.BatchConfig(global_batch=16, seq_len=256, micro_batch=16),
    loss=C.RewardRegression(num_attributes=5, lm_init_from="runs/toy_pretrain"),
    optim=C.AdamW(lr=3e-4, min_lr=3e-5, schedule="cosine", warmup_steps=20, weight_decay=0.0),
    steps=250,
    checkpoint=C.CheckpointConfig(save_every=250, keep=1),
    run_dir="runs/toy_reward_model",
)

if __name__ == "__main__":
    from nemotron_jax.train import run

    print(run(CONFIG).status)
