"""Preference losses on policy/reference log-ratios: DPO, IPO and the RPO family (SPEC §5), in log space, fp32.

With `S(y) = log π(y|x) − log π_ref(y|x)` summed over response tokens (length-normalised by option) and
`Δ = S(y_c) − S(y_l)`, `Δr = r*(x, y_c) − r*(x, y_l)`:

    dpo         −log σ(βΔ)
    ipo         (Δ − 1/(2β))²                       Δ is NOT scaled by β
    rpo_bwd_kl  KL(Bern(p) ‖ Bern(q)),  p = σ(ηΔr), q = σ(βΔ)   the paper's RPO; ∂L/∂(βΔ) = q − p
    rpo_fwd_kl  KL(Bern(q) ‖ Bern(p))
    rpo_sq      (βΔ − ηΔr)²

Every probability is handled through `log_sigmoid` (log(1 − σ(x)) = log σ(−x)), so |βΔ| in the hundreds stays
finite. Per-pair values come back; callers sum them and divide once after accumulation.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

PREFERENCE_KINDS = ("dpo", "ipo", "rpo_bwd_kl", "rpo_fwd_kl", "rpo_sq")
REWARD_KINDS = ("rpo_bwd_kl", "rpo_fwd_kl", "rpo_sq")  # kinds that need reward_chosen / reward_rejected


def _bernoulli_kl(log_a: Array, log_1ma: Array, log_b: Array, log_1mb: Array) -> Array:
    """KL(Bern(a) ‖ Bern(b)) from the four log-probabilities (0·log 0 comes out as 0, never NaN)."""
    return jnp.exp(log_a) * (log_a - log_b) + jnp.exp(log_1ma) * (log_1ma - log_1mb)


def _dpo(margin: Array, reward_margin: Optional[Array], beta: float) -> Array:
    return -jax.nn.log_sigmoid(beta * margin)


def _ipo(margin: Array, reward_margin: Optional[Array], beta: float) -> Array:
    return jnp.square(margin - 1.0 / (2.0 * beta))


def _rpo_bwd_kl(margin: Array, reward_margin: Array, beta: float) -> Array:
    z, u = beta * margin, reward_margin
    return _bernoulli_kl(jax.nn.log_sigmoid(u), jax.nn.log_sigmoid(-u), jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z))


def _rpo_fwd_kl(margin: Array, reward_margin: Array, beta: float) -> Array:
    z, u = beta * margin, reward_margin
    return _bernoulli_kl(jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z), jax.nn.log_sigmoid(u), jax.nn.log_sigmoid(-u))


def _rpo_sq(margin: Array, reward_margin: Array, beta: float) -> Array:
    return jnp.square(beta * margin - reward_margin)


_KIND_FNS: dict[str, Callable[[Array, Optional[Array], float], Array]] = {
    "dpo": _dpo, "ipo": _ipo, "rpo_bwd_kl": _rpo_bwd_kl, "rpo_fwd_kl": _rpo_fwd_kl, "rpo_sq": _rpo_sq}


def preference_loss(kind: str, logratio_chosen: Float[Array, "B"], logratio_rejected: Float[Array, "B"], *,
                    beta: float, eta: float = 1.0, reward_chosen: Optional[Float[Array, "B"]] = None,
                    reward_rejected: Optional[Float[Array, "B"]] = None) -> Float[Array, "B"]:
    """Per-pair loss of `kind` from the policy−reference log-ratios of chosen and rejected responses."""
    if kind not in _KIND_FNS:
        raise ValueError(f"unknown preference loss kind {kind!r}; choose one of {PREFERENCE_KINDS}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    reward_margin = None
    if kind in REWARD_KINDS:
        if reward_chosen is None or reward_rejected is None:
            raise ValueError(f"preference loss {kind!r} needs reward_chosen and reward_rejected (r*(x, y) from the "
                             f"data or the reward model); use kind='dpo' for unlabelled pairs")
        reward_margin = eta * (jnp.asarray(reward_chosen, jnp.float32) - jnp.asarray(reward_rejected, jnp.float32))
    margin = jnp.asarray(logratio_chosen, jnp.float32) - jnp.asarray(logratio_rejected, jnp.float32)
    return _KIND_FNS[kind](margin, reward_margin, beta)


def response_logratio(policy_logps: Float[Array, "B"], ref_logps: Float[Array, "B"], num_tokens: Float[Array, "B"],
                      *, length_normalize: bool = False) -> Float[Array, "B"]:
    """S(y) = Σ (log π − log π_ref) over response tokens, or its per-token mean when length_normalize."""
    ratio = policy_logps.astype(jnp.float32) - ref_logps.astype(jnp.float32)
    return ratio / jnp.maximum(num_tokens, 1.0) if length_normalize else ratio


def chosen_sft_term(policy_chosen_logps: Float[Array, "B"], num_tokens: Float[Array, "B"], *,
                    length_normalize: bool = False) -> Float[Array, "B"]:
    """Per-pair −log π(y_c|x) (summed, or per-token mean), weighted into DPO/RPO against falling likelihoods."""
    nll = -policy_chosen_logps.astype(jnp.float32)
    return nll / jnp.maximum(num_tokens, 1.0) if length_normalize else nll


def preference_metrics(logratio_chosen: Float[Array, "B"], logratio_rejected: Float[Array, "B"],
                       policy_chosen_logps: Float[Array, "B"], policy_rejected_logps: Float[Array, "B"], *,
                       beta: float) -> dict[str, Float[Array, ""]]:
    """Sums over the pairs (divide by the pair count after accumulation): accuracy, implicit rewards, log-probs."""
    reward_c = beta * logratio_chosen.astype(jnp.float32)
    reward_r = beta * logratio_rejected.astype(jnp.float32)
    return {
        "pref/accuracy": jnp.sum((reward_c > reward_r).astype(jnp.float32)),
        "pref/reward_margin": jnp.sum(reward_c - reward_r),
        "pref/reward_chosen": jnp.sum(reward_c),
        "pref/reward_rejected": jnp.sum(reward_r),
        "pref/logps_chosen": jnp.sum(policy_chosen_logps.astype(jnp.float32)),
        "pref/logps_rejected": jnp.sum(policy_rejected_logps.astype(jnp.float32)),
    }
