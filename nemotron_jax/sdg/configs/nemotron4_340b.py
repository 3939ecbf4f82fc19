"""The paper's synthetic prompt + preference pipeline (SPEC §4) against OpenAI-compatible endpoints.

macro topics -> subtopics -> open Q&A questions -> revision -> instruction-following prompts -> responses from
several intermediate models -> ground truth / verifiers where available, else RM-as-judge (Nemotron-4-340B-Reward
weights) -> best-vs-worst pairs with rewards -> reward and length filters -> near-duplicate removal.

    nemotron-jax sdg nemotron_jax/sdg/configs/nemotron4_340b.py --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT

Env: GENERATOR_URL / GENERATOR_MODEL (the instruct model writing prompts, Mixtral-8x7B-Instruct in the paper's first
round), POLICY_URLS / POLICY_MODELS (comma-separated intermediate models answering), REWARD_URL / REWARD_MODEL
(a server with a /v1/reward route), OPENAI_API_KEY if the endpoints need one.
"""

import os

_env = os.environ.get


def _endpoint(url: str, model: str) -> dict:
    return {"backend": "openai", "base_url": url, "model": model, "timeout_s": 600, "max_in_flight": 256,
            "max_retries": 6}


_POLICIES = list(zip(_env("POLICY_URLS", "http://127.0.0.1:8001/v1").split(","),
                     _env("POLICY_MODELS", "policy").split(",")))
MODELS = {"generator": _endpoint(_env("GENERATOR_URL", "http://127.0.0.1:8000/v1"), _env("GENERATOR_MODEL", "gen")),
          "reward": _endpoint(_env("REWARD_URL", "http://127.0.0.1:8002/v1"), _env("REWARD_MODEL", "reward"))}
MODELS.update({f"policy{i}": _endpoint(u, m) for i, (u, m) in enumerate(_POLICIES)})

CONFIG = {
    "name": "nemotron4_open_qa_preference",
    "out_dir": _env("SDG_OUT", "runs/sdg/nemotron4_340b"),
    "seed": 0,
    "concurrency": 256,
    "shard_at": "open_qa",  # topics are made once (identically, cached) in every shard; questions fan out
    "models": MODELS,
    "stages": [
        {"type": "seed"},
        {"type": "macro_topics", "n": 30},
        {"type": "subtopics", "n": 100, "keep_parent": True},  # ~3K topics, as in the paper
        {"type": "open_qa", "n": 5},
        {"type": "revise", "template": "revise_open_qa"},
        {"type": "filter_length", "fields": ["prompt"], "min_words": 3, "max_words": 400},
        {"type": "dedup", "field": "prompt", "near_threshold": 0.8},
        {"type": "instructions", "k": 1, "mode": "single", "share": 0.3},  # share [open]: not in the paper
        {"type": "responses", "models": sorted(n for n in MODELS if n.startswith("policy")), "k": 2,
         "temperature": 0.7, "max_tokens": 1024},
        {"type": "judge_ground_truth"},
        {"type": "judge_verifier"},
        {"type": "judge_rm", "weights": "nemotron4_340b"},
        {"type": "pairs", "strategy": "best_vs_worst", "margin": 0.1},
        {"type": "filter_length", "name": "length_pairs", "fields": ["chosen", "rejected"], "min_words": 1,
         "max_words": 2000},
        {"type": "dedup", "name": "dedup_pairs", "field": "chosen", "near_threshold": 0.9},
    ],
}
