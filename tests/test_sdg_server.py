"""End to end: an SDG pipeline against this project's own server (`nemotron-jax serve --preset toy-tiny
--random-init`) on loopback, then an exact replay from the cache with the server gone."""

import json
import os
import subprocess
import sys
import time

import pytest

from nemotron_jax.sdg import runner as R
from nemotron_jax.sdg.clients import ClientError, ModelClient, OpenAIBackend, Sampling

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    import jax

    env = dict(os.environ)  # share the tests' persistent compilation cache with the server process
    env.setdefault("JAX_COMPILATION_CACHE_DIR", jax.config.jax_compilation_cache_dir or "")
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    proc = subprocess.Popen([sys.executable, "-m", "nemotron_jax.cli", "serve", "--preset", "toy-tiny",
                             "--random-init", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    deadline, url = time.time() + 180, None
    while time.time() < deadline and url is None:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        if line.startswith("READY "):
            url = line.split()[1]
    if url is None:
        proc.kill()
        pytest.fail("nemotron-jax serve did not print READY")
    yield url
    proc.terminate()
    proc.wait(timeout=60)


def pipeline(url: str, out_dir: str) -> R.PipelineConfig:
    # toy-tiny has a 64-token context with the byte tokenizer: short templates (templates are data) and outputs
    gen = {"backend": "openai", "base_url": url, "model": "toy-tiny", "timeout_s": 60, "max_retries": 1}
    return R.PipelineConfig(
        name="e2e", out_dir=out_dir, concurrency=1,  # one request at a time: two compiled batch shapes, not more
        models={"generator": gen, "reward": {"backend": "scripted", "script": "nemotron_jax.sdg.fake:fake_llm"}},
        templates={"subtopics": "{n} on {topic}:"},
        stages=[{"type": "seed", "items": ["tea", "snow", "rivers"]},
                {"type": "subtopics", "n": 2, "keep_parent": True, "max_tokens": 8},
                {"type": "to_prompt", "template": "About {topic}"},
                {"type": "responses", "k": 3, "max_tokens": 8, "temperature": 1.0},
                {"type": "judge_rm"},
                {"type": "pairs", "strategy": "best_vs_worst"},
                {"type": "dedup", "field": "chosen", "near_threshold": None}])


def test_pipeline_against_local_server_then_cache_replay(server, tmp_path) -> None:
    res = R.run_pipeline(pipeline(server, str(tmp_path / "live")), progress=False)
    n_topics = res.counts["subtopics"]
    assert n_topics >= 3 and sum(res.parse.values()) == 3  # every list answer was parsed or counted as failed
    assert res.counts["responses"] == n_topics
    rows = [json.loads(x) for x in open(res.stage_paths[3])]
    assert all(len(r["responses"]) == 3 and {x["model"] for x in r["responses"]} == {"generator"} for r in rows)
    assert any(len({x["text"] for x in r["responses"]}) > 1 for r in rows)  # sampled, not greedy copies
    assert rows[0]["provenance"][1]["stage"] == "subtopics" and rows[0]["provenance"][1]["seed"] is not None
    pairs = [json.loads(x) for x in open(res.final_path)]
    assert pairs and all(p["chosen_reward"] > p["rejected_reward"] for p in pairs)
    assert res.clients["generator"]["backend_calls"] == 3 + n_topics
    manifest = json.load(open(os.path.join(res.out_dir, "manifest.json")))
    assert manifest["models"] == {"generator": "toy-tiny", "reward": "scripted"}

    # the same pipeline with the endpoint unreachable replays exactly from the cache
    dead = pipeline("http://127.0.0.1:9/v1", str(tmp_path / "replay"))
    dead = R.PipelineConfig(**{**dead.__dict__, "cache": str(tmp_path / "live" / "cache.sqlite")})
    replay = R.run_pipeline(dead, progress=False)
    assert open(replay.final_path).read() == open(res.final_path).read()
    assert replay.clients["generator"]["backend_calls"] == 0


def test_server_errors_surface_as_client_errors(server) -> None:
    client = ModelClient(OpenAIBackend(server, "toy-tiny"), max_retries=0)
    with pytest.raises(ClientError, match="400.*context"):
        client.chat([{"role": "user", "content": "x" * 200}], Sampling(max_tokens=8))
    with pytest.raises(ClientError, match="404|model"):
        ModelClient(OpenAIBackend(server, "no-such-model"), max_retries=0).complete("hi", Sampling(max_tokens=2))
    msgs = [{"role": "user", "content": "About tea"}]
    texts = client.chat(msgs, Sampling(n=3, max_tokens=8, seed=5, temperature=1.0))
    assert len(texts) == 3 and texts == client.chat(msgs, Sampling(n=3, max_tokens=8, seed=5, temperature=1.0))
