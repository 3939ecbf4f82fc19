"""Preference losses against numpy written here from SPEC §5's formulas, plus the limits and gradients it states."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemotron_jax.losses import (chosen_sft_term, preference_loss, preference_metrics, response_logratio)

LC = np.array([-3.0, 1.5, 0.2, -0.7, 4.0])
LR = np.array([-4.0, 2.5, 0.2, 1.3, -1.0])
RC = np.array([3.5, 1.0, 2.0, 0.0, 4.0])
RR = np.array([1.0, 2.0, 2.0, 3.0, 0.5])


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_reference(kind, lc, lr, rc, rr, beta, eta):
    d = lc - lr
    q = np_sigmoid(beta * d)
    p = np_sigmoid(eta * (rc - rr))
    if kind == "dpo":
        return -np.log(q)
    if kind == "ipo":
        return (d - 1.0 / (2 * beta)) ** 2
    if kind == "rpo_bwd_kl":
        return p * (np.log(p) - np.log(q)) + (1 - p) * (np.log(1 - p) - np.log(1 - q))
    if kind == "rpo_fwd_kl":
        return q * (np.log(q) - np.log(p)) + (1 - q) * (np.log(1 - q) - np.log(1 - p))
    if kind == "rpo_sq":
        return (beta * d - eta * (rc - rr)) ** 2
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["dpo", "ipo", "rpo_bwd_kl", "rpo_fwd_kl", "rpo_sq"])
@pytest.mark.parametrize("beta,eta", [(0.1, 1.0), (0.7, 0.3)])
def test_matches_numpy(kind, beta, eta):
    got = preference_loss(kind, jnp.array(LC), jnp.array(LR), beta=beta, eta=eta,
                          reward_chosen=jnp.array(RC), reward_rejected=jnp.array(RR))
    assert got.shape == (5,) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), np_reference(kind, LC, LR, RC, RR, beta, eta), rtol=2e-5, atol=1e-6)


def test_hand_computed_values():
    # dpo at βΔ = 0 is log 2; ipo with Δ = 1, β = 0.25: (1 − 2)² = 1; rpo_sq: (0.5·2 − 1·3)² = 4.
    z = jnp.zeros(1)
    np.testing.assert_allclose(preference_loss("dpo", z, z, beta=0.1), [np.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(preference_loss("ipo", jnp.ones(1), z, beta=0.25), [1.0], rtol=1e-6)
    np.testing.assert_allclose(preference_loss("rpo_sq", jnp.array([2.0]), z, beta=0.5, reward_chosen=jnp.array([3.0]),
                                               reward_rejected=z), [4.0], rtol=1e-6)
    # equal soft label and model probability: zero KL both ways
    for kind in ("rpo_bwd_kl", "rpo_fwd_kl"):
        v = preference_loss(kind, jnp.array([4.0]), z, beta=0.5, eta=2.0, reward_chosen=jnp.array([1.0]),
                            reward_rejected=z)
        np.testing.assert_allclose(v, [0.0], atol=1e-7)


@pytest.mark.parametrize("kind", ["dpo", "ipo", "rpo_bwd_kl", "rpo_fwd_kl", "rpo_sq"])
def test_extreme_margins_finite(kind):
    # |βΔ| = 50 and |ηΔr| = 50 in every sign combination
    d = jnp.array([50.0, -50.0, 50.0, -50.0])
    r = jnp.array([50.0, 50.0, -50.0, -50.0])
    z = jnp.zeros(4)
    f = lambda d_: preference_loss(kind, d_, z, beta=1.0, eta=1.0, reward_chosen=r, reward_rejected=z).sum()
    val, grad = jax.value_and_grad(f)(d)
    assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(grad)))
    if kind == "dpo":
        np.testing.assert_allclose(preference_loss("dpo", d, z, beta=1.0), [0.0, 50.0, 0.0, 50.0], atol=1e-6)
    if kind == "rpo_bwd_kl":
        # p ≈ 1, q ≈ 0 → KL ≈ −log q = 50; p ≈ 0, q ≈ 1 → KL ≈ −log(1 − q) = 50
        np.testing.assert_allclose(f(d) , 100.0, rtol=1e-5)


def test_rpo_gradient_is_q_minus_p():
    z = jnp.array(LC - LR)  # treat βΔ directly: beta=1, chosen ratio = z, rejected = 0
    u = jnp.array(RC - RR)
    g = jax.grad(lambda z_: preference_loss("rpo_bwd_kl", z_, jnp.zeros(5), beta=1.0, eta=1.0, reward_chosen=u,
                                            reward_rejected=jnp.zeros(5)).sum())(z)
    np.testing.assert_allclose(np.asarray(g), np_sigmoid(LC - LR) - np_sigmoid(RC - RR), rtol=1e-5, atol=1e-7)
    # with β ≠ 1 the gradient w.r.t. Δ is β (q − p)
    beta, eta = 0.3, 2.0
    g = jax.grad(lambda d: preference_loss("rpo_bwd_kl", d, jnp.zeros(5), beta=beta, eta=eta, reward_chosen=u,
                                           reward_rejected=jnp.zeros(5)).sum())(z)
    np.testing.assert_allclose(np.asarray(g), beta * (np_sigmoid(beta * (LC - LR)) - np_sigmoid(eta * (RC - RR))),
                               rtol=1e-5, atol=1e-7)


def test_rpo_bwd_kl_tends_to_dpo():
    lc, lr = jnp.array(LC), jnp.array(LR)
    dpo = preference_loss("dpo", lc, lr, beta=0.5)
    gaps = []
    for big in (5.0, 10.0, 30.0, 80.0):
        rpo = preference_loss("rpo_bwd_kl", lc, lr, beta=0.5, eta=big, reward_chosen=jnp.ones(5),
                              reward_rejected=jnp.zeros(5))
        gaps.append(float(jnp.max(jnp.abs(rpo - dpo))))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-5


def test_ipo_does_not_scale_margin_by_beta():
    lc, lr = jnp.array([2.0]), jnp.array([0.0])
    # (Δ − 1/(2β))² with Δ = 2, β = 0.5 → (2 − 1)² = 1; a β-scaled Δ would give (1 − 1)² = 0
    np.testing.assert_allclose(preference_loss("ipo", lc, lr, beta=0.5), [1.0], rtol=1e-6)


def test_errors():
    z = jnp.zeros(2)
    with pytest.raises(ValueError, match="unknown preference loss"):
        preference_loss("kto", z, z, beta=0.1)
    with pytest.raises(ValueError, match="needs reward_chosen"):
        preference_loss("rpo_bwd_kl", z, z, beta=0.1)
    with pytest.raises(ValueError, match="beta must be"):
        preference_loss("dpo", z, z, beta=0.0)


def test_logratio_sft_term_and_metrics():
    pol = jnp.array([-10.0, -6.0]); ref = jnp.array([-12.0, -5.0]); n = jnp.array([4.0, 2.0])
    np.testing.assert_allclose(response_logratio(pol, ref, n), [2.0, -1.0])
    np.testing.assert_allclose(response_logratio(pol, ref, n, length_normalize=True), [0.5, -0.5])
    np.testing.assert_allclose(chosen_sft_term(pol, n), [10.0, 6.0])
    np.testing.assert_allclose(chosen_sft_term(pol, n, length_normalize=True), [2.5, 3.0])
    m = preference_metrics(jnp.array([2.0, -1.0]), jnp.array([1.0, 0.5]), pol, jnp.array([-3.0, -4.0]), beta=0.5)
    np.testing.assert_allclose(m["pref/accuracy"], 1.0)
    np.testing.assert_allclose(m["pref/reward_margin"], 0.5 * (1.0 - 1.5))
    np.testing.assert_allclose(m["pref/reward_chosen"], 0.5)
    np.testing.assert_allclose(m["pref/reward_rejected"], 0.75)
    np.testing.assert_allclose(m["pref/logps_chosen"], -16.0)
    np.testing.assert_allclose(m["pref/logps_rejected"], -7.0)
