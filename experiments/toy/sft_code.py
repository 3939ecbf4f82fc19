"""Toy code SFT: the toy-pretrained model on the toy world's Python tasks, loss on assistant tokens (SPEC §5 stage 1).

    python experiments/toy/sft_code.py        # after experiments/toy/pretrain.py; writes runs/toy_sft_code

`prepare` writes the toy world's alignment JSONL to runs/toy/data once (experiments/toy/data.py does the same).
"""

from pathlib import Path

from nemotron_jax import config as C

DATA = "runs/toy/data"
TOKENIZER = "runs/toy_pretrain/tokenizer.model"  # the tokenizer the base model was pretrained with
MODEL = C.toy_small(vocab_size=4096, max_seq_len=256)  # must equal experiments/toy/pretrain.py's model

CONFIG = C.Experiment(
    name="toy_sft_code",
    model=MODEL,
    data=C.ChatData(paths=(f"{DATA}/sft_code.jsonl",), tokenizer=TOKENIZER),
    batch=C.BatchConfig(global_batch=16, seq_len=256, micro_batch=16),
    loss=C.SFT(stage="code"),
    optim=C.AdamW(lr=1e-3, min_lr=1e-3, schedule="constant", warmup_steps=10, weight_decay=0.0),
    steps=100,
    init_from="runs/toy_pretrain",
    checkpoint=C.CheckpointConfig(save_every=100, keep=1),
    run_dir="runs/toy_sft_code",
)


def prepare(exp: C.Experiment) -> None:
    """Write the toy world's SFT/preference/HelpSteer files unless they exist."""
    if not Path(DATA, "sft_code.jsonl").exists():
        from nemotron_jax.data.toyworld.export import write_run_data

        write_run_data(C.ToyWorldConfig(seed=0), Path(DATA).parent,
                       stages=("sft_code", "sft_general", "preference_pairs", "helpsteer_train", "helpsteer_val"))


if __name__ == "__main__":
    from nemotron_jax.train import run

    prepare(CONFIG)
    print(run(CONFIG).status)
