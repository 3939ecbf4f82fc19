"""Pretraining experiment files build valid configs (paper layout, ramp, lengths), and the train CLI's overrides."""

import math
from pathlib import Path

import numpy as np
import pytest

import nemotron_jax.config as C
from nemotron_jax.train.cli import apply_overrides, load_experiment_file, main
from nemotron_jax.train.loop import total_steps
from nemotron_jax.train.ramp import make_ramp

ROOT = Path(__file__).resolve().parents[1] / "experiments"


def load(rel: str) -> C.Experiment:
    return load_experiment_file(ROOT / rel)


def test_340b_pretrain_is_the_paper_layout_and_ramp():
    from nemotron_jax.parallel.mesh import validate

    exp = load("nemotron4_340b/pretrain.py")
    p = exp.parallel
    assert (p.tensor, p.pipeline, p.virtual_stages, p.data, p.sequence_parallel) == (8, 12, 8, -1, True)
    sizes = validate(exp.model, p, num_devices=6144, batch=exp.batch.micro_batch * 64, seq_len=4096)
    assert sizes["data"] == 64
    ramp = make_ramp(exp.batch, data_parallel=64, seq_len=4096)
    switch = math.ceil(200e9 / 4096)
    assert [ramp.batch_at(s) for s in (0, switch - 1, switch, 2 * switch)] == [768, 768, 1536, 2304]
    assert [ramp.accum_at(s) for s in (0, switch, 2 * switch)] == [1, 2, 3]
    # 8T tokens: the ramp's first 400B tokens take fewer, smaller steps than at 2304
    steps = total_steps(exp, ramp)
    assert steps == ramp.steps_for_samples(math.ceil(8e12 / 4096))
    assert 8e12 / (2304 * 4096) < steps < 8e12 / (768 * 4096)
    assert (exp.optim.lr, exp.optim.min_lr, exp.optim.warmup_steps, exp.optim.b2) == (1e-4, 1e-5, 500, 0.95)
    assert [s.weight for s in exp.data.sources] == [0.70, 0.15, 0.15]


def test_continued_pretraining_files():
    for size, layout_devices in (("340b", 6144), ("15b", 8)):
        base, cpt = load(f"nemotron4_{size}/pretrain.py"), load(f"nemotron4_{size}/continued_pretrain.py")
        assert cpt.init_from == f"{base.run_dir}/checkpoints" and cpt.run_dir != base.run_dir
        assert cpt.optim.schedule == "wsd" and cpt.optim.lr <= base.optim.min_lr and cpt.optim.min_lr == 0
        assert cpt.train_tokens == 10**12 and cpt.batch.ramp is None and cpt.batch.ramp_start is None
        assert "qa_alignment" in [s.name for s in cpt.data.sources]
        assert cpt.model == base.model and cpt.parallel == base.parallel


def test_15b_fits_one_node_with_a_linear_ramp():
    from nemotron_jax.parallel.mesh import validate

    exp = load("nemotron4_15b/pretrain.py")
    sizes = validate(exp.model, exp.parallel, num_devices=8, batch=exp.batch.micro_batch * 8, seq_len=4096)
    assert sizes["fsdp"] == 8
    ramp = make_ramp(exp.batch, data_parallel=8, seq_len=4096)
    assert ramp.reachable_batches() == (256, 384, 512)
    assert [ramp.accum_at(s) for s in (0, 2_500_000, 5_000_000)] == [32, 48, 64]


def test_toy_pretrain_config():
    exp = load("toy/pretrain.py")
    assert exp.model.num_layers == 4 and exp.batch.seq_len <= exp.model.max_seq_len
    assert [s.name for s in exp.data.sources] == ["english", "lingo", "code"]


def test_overrides_convert_types_and_reject_unknown_keys():
    exp = load("toy/pretrain.py")
    new = apply_overrides(exp, ["steps=50", "optim.lr=3e-4", "batch.ramp=None", "logging.progress=false",
                                "checkpoint.dir=/tmp/x", "model.num_layers=2", "optim.decay_steps=100"])
    assert (new.steps, new.optim.lr, new.batch.ramp, new.logging.progress) == (50, 3e-4, None, False)
    assert (new.checkpoint.dir, new.model.num_layers, new.optim.decay_steps) == ("/tmp/x", 2, 100)
    assert isinstance(new.steps, int) and isinstance(new.optim.lr, float)
    with pytest.raises(C.ConfigError, match="unknown key 'optim.lrr': OptimConfig has no 'lrr'; known keys: lr, "):
        apply_overrides(exp, ["optim.lrr=1"])
    with pytest.raises(C.ConfigError, match="expected int"):
        apply_overrides(exp, ["steps=many"])
    with pytest.raises(C.ConfigError, match="optim.lr='abc': expected float"):
        apply_overrides(exp, ["optim.lr=abc"])
    with pytest.raises(C.ConfigError, match="dotted.key=value"):
        apply_overrides(exp, ["steps"])
    with pytest.raises(C.ConfigError, match="schedule must be"):  # the config's own validation still runs
        apply_overrides(exp, ["optim.schedule=exp"])


def test_cli_runs_an_experiment_file(tmp_path, capsys):
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).integers(0, 128, (64, 17)))
    (tmp_path / "exp.py").write_text(
        "from nemotron_jax import config as C\n"
        "from nemotron_jax.train.tasks import TokenRows\n"
        f"CONFIG = C.Experiment(name='cli', model=C.toy_tiny(), data=TokenRows({str(tmp_path / 'rows.npy')!r}),\n"
        "    batch=C.BatchConfig(global_batch=8, seq_len=16, micro_batch=2, ramp='0:4 12:8'),\n"
        "    optim=C.OptimConfig(lr=3e-2, warmup_steps=3), steps=24, run_dir='unused',\n"
        "    logging=C.LoggingConfig(every=1, progress=False, tensorboard=False))\n")
    # 3 steps of 4 sequences, then 21 of 8
    assert main([str(tmp_path / "exp.py"), f"run_dir={tmp_path / 'run'}", "checkpoint.save_every=12"]) == 0
    assert "cli: finished at step 24 (180 samples)" in capsys.readouterr().out
    assert (tmp_path / "run" / "loss_curve.png").exists()
    assert main([str(tmp_path / "exp.py"), "optim.nope=1"]) == 2
    assert "unknown key 'optim.nope'" in capsys.readouterr().err


@pytest.mark.parametrize("rel,devices", [("nemotron4_340b/pretrain.py", 6144), ("nemotron4_15b/pretrain.py", 8)])
def test_paper_layouts_fit_80gb_per_the_planner(rel, devices):
    from nemotron_jax.parallel.plan import plan

    exp = load(rel)
    p = plan(exp.model, exp.parallel, num_devices=devices, global_batch=exp.batch.global_batch,
             seq_len=exp.batch.seq_len, micro_batch=exp.batch.micro_batch)
    assert p.fits, f"{rel}: {(p.params + p.grads + p.optimizer + p.activations) / 1e9:.1f} GB per device"
