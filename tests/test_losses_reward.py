"""Reward-model losses against hand-computed values and numpy; SFT loss against a numpy log-softmax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemotron_jax.losses import aggregate_reward, bradley_terry_loss, ranking_accuracy, regression_loss, sft_loss


def test_regression_ignores_missing_and_divides_by_valid_count():
    pred = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = jnp.array([[2.0, -100.0, 1.0], [-100.0, -100.0, 4.0]])
    per = regression_loss(pred, target)
    np.testing.assert_allclose(per, [1.0 + 4.0, 16.0])
    valid = float(jnp.sum(target != -100.0))
    assert valid == 3.0
    np.testing.assert_allclose(per.sum() / valid, 21.0 / 3.0)
    # a missing label gets no gradient, however wrong its prediction
    g = jax.grad(lambda p: regression_loss(p, target).sum())(pred)
    np.testing.assert_allclose(g, [[-2.0, 0.0, 4.0], [0.0, 0.0, -8.0]])


def test_bradley_terry_variants():
    rc, rr, m = jnp.array([2.0, -1.0]), jnp.array([1.0, 1.0]), jnp.array([0.5, -3.0])
    sig = lambda x: 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(bradley_terry_loss(rc, rr), -np.log(sig(np.array([1.0, -2.0]))), rtol=1e-6)
    np.testing.assert_allclose(bradley_terry_loss(rc, rr, margin=m), -np.log(sig(np.array([0.5, 1.0]))), rtol=1e-6)
    np.testing.assert_allclose(bradley_terry_loss(rc, rr, margin=m, margin_mode="scale"),
                               np.array([0.5, 3.0]) * -np.log(sig(np.array([1.0, -2.0]))), rtol=1e-6)
    assert np.isfinite(bradley_terry_loss(jnp.array([-60.0]), jnp.array([60.0]))).all()
    with pytest.raises(ValueError, match="margin_mode"):
        bradley_terry_loss(rc, rr, margin=m, margin_mode="mul")


def test_aggregate_reward_uses_340b_weights():
    attrs = jnp.array([[4.0, 3.0, 4.0, 2.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    expect = [0.3 * 4 + 0.74 * 3 + 0.46 * 4 + 0.47 * 2 - 0.33 * 1, 0.3]
    np.testing.assert_allclose(aggregate_reward(attrs), expect, rtol=1e-6)
    np.testing.assert_allclose(aggregate_reward(attrs[:, :2], [1.0, -1.0]), [1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        aggregate_reward(attrs[:, :3])


def test_ranking_accuracy_counts_ties_half():
    assert ranking_accuracy([1.0, 2.0, 3.0, 0.0], [0.0, 2.0, 4.0, -1.0]) == pytest.approx(2.5 / 4)


def test_sft_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 7)).astype(np.float32)
    targets = rng.integers(0, 7, size=(2, 4)).astype(np.int32)
    mask = np.array([[0, 1, 1, 0], [1, 0, 0, 1]], np.float32)
    lse = np.log(np.exp(logits.astype(np.float64)).sum(-1))
    logp = np.take_along_axis(logits, targets[..., None], -1)[..., 0] - lse
    loss, aux = sft_loss(jnp.array(logits), jnp.array(targets), jnp.array(mask))
    np.testing.assert_allclose(loss, -(logp * mask).sum(), rtol=1e-5)
    assert float(aux["count"]) == 4.0
