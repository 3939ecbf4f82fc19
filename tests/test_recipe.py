"""The whole recipe: every experiment file builds, every paper experiment passes `plan`, and the --quick toy
weak-to-strong run produces every stage's checkpoint, data and metrics with SFT and the RM beating their baselines."""

import json
from pathlib import Path

import pytest

from nemotron_jax import config as C
from nemotron_jax.parallel.plan import plan
from nemotron_jax.train.cli import load_experiment_file

ROOT = Path(__file__).parent.parent
# experiments/toy/data.py is a data-building script (no CONFIG); every other file is an experiment.
EXPERIMENTS = sorted(p for p in (ROOT / "experiments").rglob("*.py") if p.name not in ("__init__.py", "data.py"))
PAPER = [p for p in EXPERIMENTS if p.parent.name.startswith("nemotron4_")]
# Cluster sizes the paper files are written for: 340B pretraining on 768 DGX nodes, alignment on 96 nodes,
# 15B on one node.
DEVICES = {"nemotron4_340b": {"pretrain": 6144, "continued_pretrain": 6144}, "nemotron4_15b": {}}


def _devices(path: Path) -> int:
    default = 768 if path.parent.name == "nemotron4_340b" else 8
    return DEVICES[path.parent.name].get(path.stem, default)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_experiment_file_builds_its_config(path):
    from nemotron_jax.recipe.weak_to_strong import RecipeConfig
    from nemotron_jax.sdg.runner import PipelineConfig

    cfg = load_experiment_file(path)
    if path.stem.startswith("sdg_round"):
        assert PipelineConfig(**cfg).stages  # an SDG pipeline: builds, has stages
    elif path.stem == "evaluate":
        assert cfg["benchmarks"] and len(cfg["stages"]) == 6  # the paper's six alignment stages
    else:
        assert isinstance(cfg, (C.Experiment, RecipeConfig)), type(cfg)


@pytest.mark.parametrize("path", [p for p in PAPER if isinstance(load_experiment_file(p), C.Experiment)],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_plan_accepts_every_paper_experiment(path):
    exp = load_experiment_file(path)
    p = plan(exp.model, exp.parallel, num_devices=_devices(path), global_batch=exp.batch.global_batch,
             seq_len=exp.batch.seq_len, micro_batch=exp.batch.micro_batch, device_memory_gb=80)
    assert p.fits, f"{path.name}: {p.table()}"


@pytest.mark.slow
def test_quick_recipe_end_to_end(tmp_path):
    from nemotron_jax.recipe.weak_to_strong import STAGE_ORDER, RecipeConfig, quick, run_recipe

    cfg = quick(RecipeConfig()).replace(out_dir=str(tmp_path / "run"))
    report = run_recipe(cfg, log=lambda *_: None)
    run = Path(cfg.out_dir)
    trained = ["weak_base", "reward_model", "weak_sft", *STAGE_ORDER]
    for stage in trained:
        assert any((run / stage / "checkpoints").iterdir()), f"{stage}: no checkpoint"
        assert (run / stage / "metrics.jsonl").stat().st_size > 0, f"{stage}: no metrics"
    manifest = json.loads((run / "data" / "data" / "manifest.json").read_text())
    assert all(Path(f).exists() for f in manifest["files"].values())
    for sdg in ("sdg_round1", "sdg_round2"):
        pairs = (run / sdg / "pairs_rm.jsonl").read_text().splitlines()
        rec = json.loads(pairs[0])
        assert {"chosen_reward", "rejected_reward", "verifier_chosen_reward", "rm_chosen_reward"} <= set(rec)
        # RPO's rewards: the judge's (ground truth / verifiers) by default, the RM's scores kept beside them
        assert rec["reward_source"] == "judge" and rec["chosen_reward"] == rec["verifier_chosen_reward"]
    results = json.loads((run / "eval" / "results.json").read_text())
    assert results["+ General SFT"]["Tasks"] > results["Strong base"]["Tasks"]  # SFT beats the base model
    rm = json.loads((run / "eval" / "reward_model.json").read_text())
    assert rm["overall"] > 0.5  # the reward model ranks held-out pairs above chance
    assert report.exists() and (run / "stages.png").stat().st_size > 0
    assert set(json.loads((run / "timings.json").read_text())) >= {"data", "strong_base", "eval"}


def test_sdg_chosen_reward_floor_separates_right_from_wrong_answers(tmp_path):
    """The recipe keeps a pair only if its chosen reply is right: the floor must split the toy judge's scores of
    right and wrong answers for every response kind, format and length."""
    import random

    from nemotron_jax.data import toyworld as T
    from nemotron_jax.recipe.weak_to_strong import Recipe, RecipeConfig, sdg_pipeline

    cfg = RecipeConfig()
    floor = cfg.sdg_min_chosen_reward
    stages = sdg_pipeline(Recipe(cfg.replace(out_dir=str(tmp_path)), log=lambda *a: None),
                          "sdg_round1", ["generator"]).stages
    assert {"type": "filter_reward", "field": "chosen_reward", "min_reward": floor} in stages
    tw, rng = T.toy_world(0), random.Random(0)
    seen = set()
    for p in tw.prompts(300, instructed_share=0.5):
        for kind in T.RESPONSE_KINDS:
            r = T.make_response(p, kind, rng)
            if r is None or not r.coherent:
                continue
            a = T.assess(p, r.text, coherent=True)
            score = T.scalar_reward(T.helpsteer_labels(a))
            assert (score >= floor) == a.correct, (kind, r.text, score)
            seen.add(a.correct)
    assert seen == {True, False}


def test_round1_instruction_pairs_contrast_the_instructions_at_equal_correctness(tmp_path):
    """The recipe's extra round-1 pairs: chosen follows every instruction, rejected breaks one, same correctness."""
    from nemotron_jax.recipe.weak_to_strong import Recipe, RecipeConfig, _instruction_pairs

    def item(i, ids, responses):
        return {"id": f"p{i}", "messages": [{"role": "user", "content": f"question {i}"}], "task": "t",
                "instruction_ids": ids, "instruction_kwargs": [{}] * len(ids), "answer": "a", "judge": "judge_toyworld",
                "responses": [{"model": m, "text": t, "score": s, "correct": c, "followed": f, "coherent": True}
                              for m, t, s, c, f in responses]}

    judged = tmp_path / "judged.jsonl"
    rows = [item(0, ["a", "b"], [("policy", "right, both kept", 5.7, True, [True, True]),
                                 ("generator", "wrong, both kept", 2.8, False, [True, True]),
                                 ("policy", "wrong, one broken", 2.5, False, [True, False]),
                                 ("generator", "right, one broken", 5.2, True, [False, True])]),
            item(1, [], [("policy", "right", 5.7, True, []), ("generator", "wrong", 1.8, False, [])]),
            item(2, ["a"], [("policy", "wrong, kept", 2.8, False, [True]), ("policy", "right, broken", 4.0, True,
                                                                            [False])])]
    judged.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = Recipe(RecipeConfig().replace(out_dir=str(tmp_path / "run")), log=lambda *a: None)
    pairs = _instruction_pairs(r, "sdg_round1", str(judged))
    # p0: the widest gap among same-correctness contrasts (right-kept vs right-broken 0.5; wrong-kept vs
    # wrong-broken 0.3); p1 has no instructions; p2's only follower is wrong and its breaker right: no pair
    assert [(p["id"].split(".")[0], p["chosen"], p["rejected"]) for p in pairs] == \
        [("p0", "right, both kept", "right, one broken")]
