"""The launch planner: byte counts against hand sums, the 340B paper layout fits an H100, the CLI."""

import textwrap

import pytest

from nemotron_jax import config as C
from nemotron_jax.config import ConfigError
from nemotron_jax.model import param_counts
from nemotron_jax.parallel.plan import cli_main, plan

PAPER = C.ParallelConfig(data=64, tensor=8, pipeline=12, virtual_stages=8, microbatches=12, sequence_parallel=True)


def test_340b_paper_layout_fits_an_h100():
    p = plan(C.nemotron4_340b(), PAPER, num_devices=6144, global_batch=2304, seq_len=4096, micro_batch=12,
             step_time_s=8.0)
    assert p.fits, p.table()
    assert p.bubble == pytest.approx(11 / (8 * 12 + 11))
    assert p.mfu == pytest.approx(0.4086, abs=2e-3)
    counts = param_counts(C.nemotron4_340b())
    emb = counts["embedding"] / 2  # input table (fp32, gathered) and output matrix (cast to bf16)
    # Layers split 96 ways (tensor x pipeline), embedding/output 8 ways (tensor; every pipeline stage holds them);
    # fp32 masters and moments are further split over data (64), the compute copy is not.
    layers, embed = counts["non_embedding"] / 96, counts["embedding"] / 8
    assert p.params == pytest.approx(4 * (layers + embed) / 64, rel=1e-3)
    assert p.compute_copy == pytest.approx(2 * layers + (4 + 2) * emb / 8, rel=1e-3)
    assert p.optimizer == pytest.approx(8 * (layers + embed) / 64, rel=1e-3)


def test_state_bytes_hand_sum():
    cfg = C.toy_tiny()  # fp32: no cast, so a compute copy exists only when the layouts differ
    n = param_counts(cfg)["total"]
    one = plan(cfg, C.ParallelConfig(data=1), num_devices=1, global_batch=2, seq_len=16)
    assert (one.params, one.compute_copy, one.grads, one.optimizer) == (4 * n, 0, 4 * n, 8 * n)
    dist = plan(cfg, C.ParallelConfig(data=4), num_devices=4, global_batch=8, seq_len=16)
    assert dist.params == pytest.approx(n) and dist.optimizer == pytest.approx(2 * n)  # masters/moments over data
    assert dist.compute_copy == 4 * n and dist.grads == pytest.approx(4 * n + n)  # gathered copy, sharded sum
    acc = plan(cfg, C.ParallelConfig(data=1), num_devices=1, global_batch=4, seq_len=16, micro_batch=1)
    assert acc.accum_steps == 4 and acc.grads == 8 * n  # accumulator + microbatch gradients


def test_activation_estimate_full_remat_hand_sum():
    cfg = C.toy_tiny(remat="full")  # fp32, xla attention
    p = plan(cfg, C.ParallelConfig(data=1), num_devices=1, global_batch=2, seq_len=16)
    d, n, k, h, f, t, v = 32, 4, 2, 12, 64, 16, 128
    internals = 4 * (6 * d + (2 * n + 3 * k) * h + n * h + 2 * f) + 8 * n * t
    want = 2 * t * (2 * 4 * d + internals) + 2 * t * v * 4 * 2
    assert p.activations == pytest.approx(want)


def test_plan_rejects_bad_batches():
    with pytest.raises(ConfigError, match="global_batch=10"):
        plan(C.toy_tiny(), C.ParallelConfig(data=4), num_devices=4, global_batch=10, seq_len=16)


def test_cli_reads_an_experiment_file(tmp_path, capsys):
    path = tmp_path / "exp.py"
    path.write_text(textwrap.dedent("""
        from nemotron_jax import config as C
        CONFIG = C.Experiment(name="t", model=C.toy_tiny(), data=None,
                              batch=C.BatchConfig(global_batch=16, seq_len=32, micro_batch=2),
                              parallel=C.ParallelConfig(data=2, tensor=2), steps=1)
    """))
    assert cli_main([str(path), "--step-time", "1.0", "--memory-gb", "1"]) == 0
    out = capsys.readouterr().out
    assert "fits" in out and "accumulation steps 4" in out and "MFU" in out


def test_cli_preset_with_flags_and_errors(capsys):
    assert cli_main(["toy-tiny", "--data", "2", "--global-batch", "4", "--seq-len", "16"]) == 0
    assert cli_main(["toy-tiny", "--data", "1", "--tensor", "3", "--global-batch", "4"]) == 2
    assert "not divisible by tensor=3" in capsys.readouterr().err
