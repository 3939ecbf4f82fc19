"""Build the toy recipe's data for a run folder: corpus, tokenizer, SFT/preference/HelpSteer data, held-out evals.

    python experiments/toy/data.py runs/toy [--quick] [--seed 0] [--vocab 4096]

Writes runs/<name>/data/ (layout in nemotron_jax/data/toyworld/export.py) and prints the manifest's record counts.
"""

import argparse
import json

from nemotron_jax.config import ToyWorldConfig
from nemotron_jax.data.toyworld.export import build_toy_data, quick_config

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--quick", action="store_true", help="about 10x smaller files, for tests and smoke runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=4096)
    args = ap.parse_args()
    cfg = quick_config(seed=args.seed) if args.quick else ToyWorldConfig(seed=args.seed)
    manifest = build_toy_data(args.run_dir, cfg, vocab_size=args.vocab)
    print(json.dumps({"records": manifest["records"], "pretrain_chars": manifest["pretrain_chars"]}, indent=2))
