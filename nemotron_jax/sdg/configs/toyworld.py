"""SDG round on the toy world: its task generator's prompts -> k responses per model -> the toy world's judge
(answer checker + instruction verifiers + HelpSteer rules, 340B weights) -> best-vs-worst pairs with rewards (RPO).

    nemotron-jax serve --checkpoint runs/toy/weak_sft --tokenizer runs/toy/tokenizer.model --port 8000 &
    nemotron-jax sdg nemotron_jax/sdg/configs/toyworld.py [--shard i/n]

Env: NEMOTRON_SDG_BASE_URL (default http://127.0.0.1:8000/v1), NEMOTRON_SDG_MODEL (default: the server's name),
NEMOTRON_SDG_OUT (default runs/sdg/toyworld). With NEMOTRON_SDG_DRY_RUN=1 a deterministic fake model answers.
"""

import os

_URL = os.environ.get("NEMOTRON_SDG_BASE_URL", "http://127.0.0.1:8000/v1")
_GEN = ({"backend": "scripted", "script": "nemotron_jax.sdg.fake:fake_llm"} if os.environ.get("NEMOTRON_SDG_DRY_RUN")
        else {"backend": "openai", "base_url": _URL, "model": os.environ.get("NEMOTRON_SDG_MODEL", "toy"),
              "timeout_s": 300, "max_in_flight": 64})

CONFIG = {
    "name": "toyworld_preference",
    "out_dir": os.environ.get("NEMOTRON_SDG_OUT", "runs/sdg/toyworld"),
    "seed": 0,
    "concurrency": 32,  # items in flight: the server batches their requests on the device
    "models": {"generator": _GEN},
    "stages": [
        {"type": "toyworld", "n": 512, "instructed_share": 0.5, "split": "train"},
        {"type": "responses", "models": ["generator"], "k": 4, "temperature": 0.9, "max_tokens": 96},
        {"type": "judge_toyworld"},
        {"type": "pairs", "strategy": "best_vs_worst", "margin": 0.5},
        {"type": "filter_length", "fields": ["chosen", "rejected"], "min_words": 1, "max_words": 200},
        {"type": "dedup", "field": "chosen", "near_threshold": None},
    ],
}
