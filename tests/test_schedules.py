"""LR schedules against hand-worked values."""

import math

import numpy as np
import pytest

from nemotron_jax.config import ConfigError, OptimConfig
from nemotron_jax.train.schedules import make_schedule


def lrs(cfg: OptimConfig, total: int) -> np.ndarray:
    sched = make_schedule(cfg, total)
    return np.array([float(sched(s)) for s in range(total + 2)])


def test_cosine_warmup_then_half_cosine_to_floor():
    cfg = OptimConfig(lr=1.0, min_lr=0.1, schedule="cosine", warmup_steps=4, decay_steps=4)
    got = lrs(cfg, 8)
    # warmup: (s+1)/4; decay: 0.1 + 0.9 * 0.5 * (1 + cos(pi * k / 4)), k = s - 4; floor after.
    want = [0.25, 0.5, 0.75, 1.0,
            1.0, 0.1 + 0.45 * (1 + math.cos(math.pi / 4)), 0.55, 0.1 + 0.45 * (1 + math.cos(3 * math.pi / 4)),
            0.1, 0.1]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_cosine_decay_defaults_to_rest_of_run():
    cfg = OptimConfig(lr=2.0, min_lr=0.0, schedule="cosine", warmup_steps=0)
    got = lrs(cfg, 10)
    assert got[0] == pytest.approx(2.0)
    assert got[5] == pytest.approx(1.0)  # half way through the 10 decay steps
    assert got[10] == pytest.approx(0.0, abs=1e-7)


def test_linear_and_constant():
    lin = lrs(OptimConfig(lr=1.0, min_lr=0.0, schedule="linear", warmup_steps=2, decay_steps=4), 6)
    np.testing.assert_allclose(lin, [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0], atol=1e-7)
    const = lrs(OptimConfig(lr=3e-4, min_lr=0.0, schedule="constant", warmup_steps=3), 5)
    np.testing.assert_allclose(const, [1e-4, 2e-4, 3e-4, 3e-4, 3e-4, 3e-4, 3e-4], rtol=1e-6)


@pytest.mark.parametrize("shape,mid", [("linear", 0.5), ("cosine", 0.5), ("sqrt", 1 - math.sqrt(0.5))])
def test_wsd_stable_then_decay_over_last_fraction(shape, mid):
    # 10 steps, warmup 2, decay over the last 40% = 4 steps (6..9) reaching min_lr on the last step.
    cfg = OptimConfig(lr=1.0, min_lr=0.0, schedule="wsd", warmup_steps=2, wsd_decay_fraction=0.4,
                      wsd_decay_shape=shape)
    got = lrs(cfg, 10)
    np.testing.assert_allclose(got[:6], [0.5, 1.0, 1.0, 1.0, 1.0, 1.0], atol=1e-7)
    # decay progress at steps 6, 7, 8, 9 = 1/4, 2/4, 3/4, 4/4
    assert got[7] == pytest.approx(mid, abs=1e-6)
    assert got[9] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(got[5:10]) < 0)


def test_sqrt_decay_is_steepest_first():
    cfg = OptimConfig(lr=1.0, min_lr=0.0, schedule="wsd", warmup_steps=0, wsd_decay_fraction=1.0,
                      wsd_decay_shape="sqrt")
    drops = -np.diff(lrs(cfg, 16)[:16])
    assert drops[0] > drops[7] > 0


def test_bad_schedules_fail_with_fixes():
    with pytest.raises(ConfigError, match="warmup_steps"):
        make_schedule(OptimConfig(warmup_steps=100), 10)
    with pytest.raises(ConfigError, match="wsd_decay_shape"):
        make_schedule(OptimConfig(schedule="wsd", wsd_decay_shape="exp"), 10)
