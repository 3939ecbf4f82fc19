"""The paper's synthetic multi-turn dialogues for SFT (SPEC §4): an instruct model plays both the assistant and a
user with an explicit persona (greedy decoding), user turns are cleaned of polite filler, and dialogues whose
reward (Nemotron-4-340B-Reward weights) falls under a threshold are dropped.

    nemotron-jax sdg nemotron_jax/sdg/configs/nemotron4_340b_dialogue.py --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT

Env: GENERATOR_URL / GENERATOR_MODEL (the instruct model), REWARD_URL / REWARD_MODEL (a /v1/reward server),
MIN_REWARD (default 3.0), SDG_OUT.
"""

import os

_env = os.environ.get


def _endpoint(url: str, model: str) -> dict:
    return {"backend": "openai", "base_url": url, "model": model, "timeout_s": 600, "max_in_flight": 256,
            "max_retries": 6}


CONFIG = {
    "name": "nemotron4_dialogues",
    "out_dir": _env("SDG_OUT", "runs/sdg/nemotron4_340b_dialogue"),
    "seed": 0,
    "concurrency": 256,
    "shard_at": "open_qa",
    "models": {"generator": _endpoint(_env("GENERATOR_URL", "http://127.0.0.1:8000/v1"), _env("GENERATOR_MODEL", "gen")),
               "reward": _endpoint(_env("REWARD_URL", "http://127.0.0.1:8002/v1"), _env("REWARD_MODEL", "reward"))},
    "stages": [
        {"type": "seed"},
        {"type": "macro_topics", "n": 30},
        {"type": "subtopics", "n": 100, "keep_parent": True},
        {"type": "open_qa", "n": 2},
        {"type": "dedup", "field": "prompt", "near_threshold": 0.8},
        {"type": "dialogue", "turns": 3, "temperature": 0.0, "max_tokens": 1024},
        {"type": "rm_score", "weights": "nemotron4_340b"},
        {"type": "filter_reward", "field": "reward", "min_reward": float(_env("MIN_REWARD", "3.0"))},
    ],
}
