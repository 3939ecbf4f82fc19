"""SDG over in-process models (no HTTP): a tiny policy generates, a tiny reward model judges (RM-as-judge)."""

import json

import jax
import pytest

from nemotron_jax import config as C
from nemotron_jax.inference.byte_tokenizer import ByteTokenizer
from nemotron_jax.inference.client import InferenceClient
from nemotron_jax.model import init_params
from nemotron_jax.model.heads import init_reward_params
from nemotron_jax.sdg import runner as R
from nemotron_jax.sdg.clients import ModelClient

pytestmark = pytest.mark.slow  # compiles a sampler and a reward model

CFG = C.toy_tiny(vocab_size=300, max_seq_len=64)
TOK = ByteTokenizer(CFG.vocab_size)


@pytest.fixture(scope="module")
def models():
    policy = InferenceClient.from_params(init_params(CFG, jax.random.key(0)), CFG, TOK, model_name="toy",
                                         max_wait_ms=20.0, chunk=4)
    rm = InferenceClient.from_params(init_reward_params(CFG, jax.random.key(3)), CFG, TOK, model_name="rm")
    yield policy, rm
    policy.close()
    rm.close()


def test_rm_as_judge_pairs_follow_the_reward_model(models, tmp_path) -> None:
    policy, rm = models
    clients = {"generator": ModelClient(policy.as_sdg_backend()), "reward": ModelClient(rm.as_sdg_backend())}
    cfg = R.PipelineConfig(
        out_dir=str(tmp_path), concurrency=2, cache=None,
        stages=[{"type": "seed", "items": ["tea", "snow"]},
                {"type": "to_prompt", "template": "On {topic}"},
                {"type": "responses", "k": 2, "max_tokens": 6, "temperature": 1.0},
                {"type": "judge_rm", "weights": {"correctness": 1.0, "verbosity": -0.5}},
                {"type": "pairs", "strategy": "best_vs_worst"}])
    res = R.run_pipeline(cfg, progress=False, clients=clients)
    judged = [json.loads(x) for x in open(res.stage_paths[3])]
    pairs = {p["id"].rsplit(".", 1)[0]: p for p in map(json.loads, open(res.final_path))}
    assert len(judged) == 2 and pairs
    for item in judged:
        for r in item["responses"]:  # each score is the reward model's attributes under the given weights
            out = rm.reward(item["messages"] + [{"role": "assistant", "content": r["text"]}])
            want = out["attributes"]["correctness"] - 0.5 * out["attributes"]["verbosity"]
            assert r["score"] == pytest.approx(want, abs=1e-5)
        if item["id"] in pairs:
            p, scores = pairs[item["id"]], [r["score"] for r in item["responses"]]
            assert p["chosen_reward"] == max(scores) and p["rejected_reward"] == min(scores)
    assert res.clients["reward"]["backend_calls"] == 4
