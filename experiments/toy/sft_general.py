"""Toy general SFT: the toy world's chat tasks plus a replayed 2% of the code-SFT data (SPEC §5 stage 2), from
runs/toy_sft_code. Run experiments/toy/sft_code.py first (its `prepare` writes the data)."""

from nemotron_jax import config as C

DATA = "runs/toy/data"
TOKENIZER = "runs/toy_pretrain/tokenizer.model"

CONFIG = C.Experiment(
    name="toy_sft_general",
    model=C.toy_small(vocab_size=4096, max_seq_len=256),
    data=C.ChatData(paths=(f"{DATA}/sft_general.jsonl",), tokenizer=TOKENIZER, replay_path=f"{DATA}/sft_code.jsonl",
                    replay_fraction=0.02),
    batch=C.BatchConfig(global_batch=16, seq_len=256, micro_batch=16),
    loss=C.SFT(stage="general"),
    optim=C.AdamW(lr=1e-3, min_lr=1e-4, schedule="cosine", warmup_steps=10, weight_decay=0.0),
    steps=300,
    init_from="runs/toy_sft_code",
    checkpoint=C.CheckpointConfig(save_every=300, keep=1),
    run_dir="runs/toy_sft_general",
)

if __name__ == "__main__":
    from nemotron_jax.train import run

    print(run(CONFIG).status)
