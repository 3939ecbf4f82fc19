"""The SDG runner: resume after a kill equals an uninterrupted run, shards are disjoint and complete, cache replay
makes no model calls, configs and CLI fail clearly."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nemotron_jax.sdg import runner as R
from nemotron_jax.sdg.clients import ClientError, ModelClient, ResponseCache, ScriptedBackend, TransientError
from nemotron_jax.sdg.fake import fake_llm

FAKE = {"backend": "scripted", "script": "nemotron_jax.sdg.fake:fake_llm"}
STAGES = [
    {"type": "seed"},
    {"type": "macro_topics", "n": 3},
    {"type": "subtopics", "n": 3},
    {"type": "open_qa", "n": 2},
    {"type": "instructions", "k": 1, "allowed": ["punctuation:no_comma", "detectable_format:title"]},
    {"type": "responses", "k": 3},
    {"type": "judge_rm"},
    {"type": "pairs"},
    {"type": "dedup", "field": "chosen", "near_threshold": None},
]


def config(out_dir, **kw) -> R.PipelineConfig:
    return R.PipelineConfig(stages=STAGES, models={"generator": FAKE, "reward": FAKE}, out_dir=str(out_dir),
                            concurrency=4, **kw)


def read(path):
    with open(path) as f:
        return f.read()


def test_pipeline_outputs_counts_and_provenance(tmp_path) -> None:
    res = R.run_pipeline(config(tmp_path / "a"), progress=False)
    assert res.counts["open_qa"] == 18 and res.counts["responses"] == 18 and res.counts["pairs"] == 18
    rows = [json.loads(x) for x in read(res.final_path).splitlines()]
    assert {"prompt", "chosen", "rejected", "chosen_reward", "rejected_reward", "judge"} <= set(rows[0])
    assert all(r["chosen_reward"] > r["rejected_reward"] for r in rows)
    assert [p["stage"] for p in rows[0]["provenance"]] == [s["type"] for s in STAGES[:-1]]
    assert rows[0]["instruction_ids"][0] in ("punctuation:no_comma", "detectable_format:title")
    manifest = json.loads(read(os.path.join(res.out_dir, "manifest.json")))
    assert manifest["counts"] == res.counts and manifest["parse"] == {"numbered": 13}
    assert res.clients["reward"]["backend_calls"] == 54


def test_cache_replay_makes_no_model_calls(tmp_path) -> None:
    first = R.run_pipeline(config(tmp_path / "a"), progress=False)

    def forbidden(kind, payload):
        raise AssertionError("a replay must not call the model")

    cache = ResponseCache(str(tmp_path / "a" / "cache.sqlite"))
    clients = {n: ModelClient(ScriptedBackend(forbidden), cache=cache) for n in ("generator", "reward")}
    replay = R.run_pipeline(config(tmp_path / "b"), progress=False, clients=clients)
    assert read(replay.final_path) == read(first.final_path)
    assert all(s["backend_calls"] == 0 and s["cache_hits"] > 0 for s in replay.clients.values())


def test_failed_items_are_retried_on_rerun_and_result_equals_uninterrupted(tmp_path) -> None:
    ref = R.run_pipeline(config(tmp_path / "ref", cache=None), progress=False)
    calls = {"n": 0}

    def flaky(kind, payload):  # the model dies part-way through the responses stage
        if payload.get("n") == 3:
            calls["n"] += 1
            if calls["n"] > 7:
                raise TransientError("endpoint gone")
        return fake_llm(kind, payload)

    cfg = config(tmp_path / "run", cache=None)
    broken = {"generator": ModelClient(ScriptedBackend(flaky), max_retries=0),
              "reward": ModelClient(ScriptedBackend(fake_llm))}
    with pytest.raises(R.StageFailed, match="responses.*11 of 18 items failed.*rerun"):
        R.run_pipeline(cfg, progress=False, clients=broken)
    with open(tmp_path / "run" / "05_responses.done") as f:
        assert len(f.read().split()) == 7
    again = R.run_pipeline(cfg, progress=False)
    assert read(again.final_path) == read(ref.final_path)
    assert again.clients["generator"]["backend_calls"] == 11  # only the unfinished items were asked again
    for a, b in zip(again.stage_paths, ref.stage_paths):
        assert read(a) == read(b)


SLOW_CONFIG = """
import time
from nemotron_jax.sdg.fake import fake_llm

def slow(kind, payload):
    time.sleep(0.05)
    return fake_llm(kind, payload)

CONFIG = {{"out_dir": {out!r}, "concurrency": 2, "cache": None,
           "models": {{"generator": {{"backend": "scripted", "script": slow}},
                       "reward": {{"backend": "scripted", "script": slow}}}},
           "stages": {stages!r}}}
"""


def test_resume_after_kill_equals_uninterrupted_run(tmp_path) -> None:
    cfg_path = tmp_path / "cfg.py"
    cfg_path.write_text(SLOW_CONFIG.format(out=str(tmp_path / "killed"), stages=STAGES))
    proc = subprocess.Popen([sys.executable, "-m", "nemotron_jax.cli", "sdg", str(cfg_path), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = tmp_path / "killed" / "06_judge_rm.done"  # kill in the middle of the RM judge stage
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if done.exists() and len(done.read_text().split()) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"pipeline ended before the kill: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "06_judge_rm.jsonl").exists()
    assert R.cli_main([str(cfg_path), "--no-progress"]) == 0  # resume
    R.run_pipeline(config(tmp_path / "ref", cache=None), progress=False)
    for name in sorted(os.listdir(tmp_path / "ref")):
        if name.endswith(".jsonl"):
            assert read(tmp_path / "killed" / name) == read(tmp_path / "ref" / name), name
    assert not [n for n in os.listdir(tmp_path / "killed") if n.endswith((".done", ".partial.jsonl"))]


def test_shards_are_disjoint_and_complete(tmp_path) -> None:
    full = R.run_pipeline(config(tmp_path / "full", cache=None), progress=False)
    want = sorted(read(full.final_path).splitlines())
    got, ids = [], []
    for i in range(3):
        res = R.run_pipeline(config(tmp_path / "sharded", shard_at="open_qa"), shard=(i, 3), progress=False)
        assert res.out_dir.endswith(f"shard-{i:05d}-of-00003")
        lines = read(res.final_path).splitlines()
        assert lines, "each shard should get some of the 9 subtopics"
        got += lines
        ids.append({json.loads(x)["id"] for x in lines})
    assert sorted(got) == want
    assert sum(map(len, ids)) == len(set().union(*ids))
    merged = R.merge_shards(config(tmp_path / "sharded"), 3)
    assert sorted(read(merged).splitlines()) == want
    with pytest.raises(R.StageFailed, match="2 of 4 shards have not finished"):
        os.makedirs(tmp_path / "four" / "shard-00000-of-00004")
        for i in (0, 1):
            R.run_pipeline(config(tmp_path / "four", shard_at="open_qa"), shard=(i, 4), progress=False)
        R.merge_shards(config(tmp_path / "four"), 4)


def test_json_config_via_cli_and_bad_inputs(tmp_path, capsys) -> None:
    cfg = {"out_dir": str(tmp_path / "o"), "models": {"generator": FAKE, "reward": FAKE}, "stages": STAGES[:4]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    assert R.cli_main([str(path), "--no-progress", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["open_qa"] == 18
    with pytest.raises(SystemExit):
        R.cli_main([str(path), "--shard", "3/3"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"stages": [\n  {"type": "seed"},\n  oops]}')
    with pytest.raises(ValueError, match="bad.json:3"):
        R.load_config(str(bad))
    with pytest.raises(ValueError, match="unknown stage type 'topics'.*macro_topics"):
        R.build_stage({"type": "topics"})
    with pytest.raises(ValueError, match="does not take \\['count'\\]"):
        R.build_stage({"type": "subtopics", "count": 3})
    with pytest.raises(ValueError, match="unique"):
        R.run_pipeline(R.PipelineConfig(stages=[{"type": "seed"}, {"type": "seed"}], out_dir=str(tmp_path / "u")),
                       progress=False)
    with pytest.raises(ValueError, match="macro_topics.*\\['judge'\\]"):
        R.run_pipeline(R.PipelineConfig(stages=[{"type": "seed"}, {"type": "macro_topics", "model": "judge"}],
                                        models={"generator": FAKE}, out_dir=str(tmp_path / "m"), concurrency=1),
                       progress=False)


def test_jsonl_source_reports_file_and_line(tmp_path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"text": "Ada met Bob."}) + "\n\n" + "{broken\n")
    cfg = R.PipelineConfig(stages=[{"type": "jsonl", "path": str(docs), "rename": {"text": "document"}},
                                   {"type": "closed_qa", "n": 2}], models={"generator": FAKE},
                           out_dir=str(tmp_path / "o"))
    with pytest.raises(ValueError, match="docs.jsonl:3: not valid JSON"):
        R.run_pipeline(cfg, progress=False)
    docs.write_text(json.dumps({"text": "Ada met Bob."}) + "\n")
    res = R.run_pipeline(cfg, progress=False)
    assert res.counts == {"jsonl": 1, "closed_qa": 2}


def test_shipped_configs_build(monkeypatch, tmp_path) -> None:
    root = os.path.join(os.path.dirname(R.__file__), "configs")
    names = sorted(n for n in os.listdir(root) if n.endswith(".py") and n != "__init__.py")
    assert names == ["nemotron4_340b.py", "nemotron4_340b_dialogue.py", "toyworld.py"]
    for name in names:
        cfg = R.load_config(os.path.join(root, name))
        stages = [R.build_stage(s) for s in cfg.stages]
        R._check_models(stages, cfg.models)
    monkeypatch.setenv("NEMOTRON_SDG_DRY_RUN", "1")
    cfg = R.load_config(os.path.join(root, "toyworld.py"))
    cfg = R.PipelineConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "tw"),
                              "stages": [{**cfg.stages[0], "n": 16}] + cfg.stages[1:]})
    res = R.run_pipeline(cfg, progress=False)
    assert res.counts["toyworld"] == 16 and res.counts["responses"] == 16


def test_rejected_requests_are_logged_and_dropped(tmp_path) -> None:
    def picky(kind, payload):
        if "snow" in payload["messages"][-1]["content"]:
            raise ClientError("HTTP 400: prompt longer than the context")
        return fake_llm(kind, payload)

    stages = [{"type": "seed", "items": ["tea", "snow", "rain"]}, {"type": "to_prompt"},
              {"type": "responses", "k": 2}]
    cfg = R.PipelineConfig(stages=stages, out_dir=str(tmp_path / "a"), cache=None)
    res = R.run_pipeline(cfg, progress=False, clients={"generator": ModelClient(ScriptedBackend(picky))})
    assert res.counts["responses"] == 2 and res.parse == {"rejected:responses": 1}
    log = [json.loads(x) for x in open(tmp_path / "a" / "02_responses.rejected.jsonl")]
    assert log[0]["id"] == "seed-1" and "400" in log[0]["error"]
    strict = R.PipelineConfig(stages=stages, out_dir=str(tmp_path / "b"), cache=None, skip_rejected=False)
    with pytest.raises(R.StageFailed, match="1 of 3 items failed.*ClientError"):
        R.run_pipeline(strict, progress=False, clients={"generator": ModelClient(ScriptedBackend(picky))})


def test_changed_settings_are_not_mixed_with_old_outputs(tmp_path) -> None:
    R.run_pipeline(config(tmp_path / "a"), progress=False)
    again = R.run_pipeline(config(tmp_path / "a"), progress=False)  # same settings: everything reused
    assert all(s["backend_calls"] == 0 for s in again.clients.values())
    changed = [dict(s) for s in STAGES]
    changed[2]["n"] = 2
    cfg = R.PipelineConfig(**{**config(tmp_path / "a").__dict__, "stages": changed})
    with pytest.raises(ValueError, match="'subtopics'.*different settings"):
        R.run_pipeline(cfg, progress=False)
    with pytest.raises(ValueError, match="'seed'.*different settings"):
        R.run_pipeline(config(tmp_path / "a", seed=1), progress=False)
