"""Reward-model losses (SPEC §3): multi-attribute regression with missing labels, Bradley-Terry variants, and the
weighted aggregation of attributes into one scalar reward.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

HELPSTEER_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
# Nemotron-4-340B-Reward's inference weights, in HELPSTEER_ATTRIBUTES order (0.65/0.8/... belongs to a 70B model).
NEMOTRON4_340B_REWARD_WEIGHTS = (0.3, 0.74, 0.46, 0.47, -0.33)
MISSING_LABEL = -100.0
BT_MARGIN_MODES = ("subtract", "scale")


def label_mask(target: Float[Array, "B A"]) -> Float[Array, "B A"]:
    """1.0 where the label is present, 0.0 where it is the missing marker −100."""
    return (target != MISSING_LABEL).astype(jnp.float32)


def regression_loss(pred: Float[Array, "B A"], target: Float[Array, "B A"]) -> Float[Array, "B"]:
    """Per-example sum of squared errors over present labels (−100 = missing, ignored).

    The paper's masked MSE is `regression_loss(p, t).sum() / label_mask(t).sum()`: divide by the number of valid
    labels in the whole batch, once, after accumulation.
    """
    mask = label_mask(target)
    err = pred.astype(jnp.float32) - jnp.where(mask > 0, target.astype(jnp.float32), 0.0)
    return jnp.sum(jnp.square(err) * mask, axis=-1)


def bradley_terry_loss(r_chosen: Float[Array, "B"], r_rejected: Float[Array, "B"], *,
                       margin: Optional[Float[Array, "B"]] = None,
                       margin_mode: str = "subtract") -> Float[Array, "B"]:
    """Pairwise −log σ(r_c − r_r); with a margin m: −log σ(r_c − r_r − m) ("subtract") or
    |m|·(−log σ(r_c − r_r)) ("scale", preference-strength weighting)."""
    if margin_mode not in BT_MARGIN_MODES:
        raise ValueError(f"margin_mode must be one of {BT_MARGIN_MODES}, got {margin_mode!r}")
    diff = r_chosen.astype(jnp.float32) - r_rejected.astype(jnp.float32)
    if margin is None:
        return -jax.nn.log_sigmoid(diff)
    margin = jnp.asarray(margin, jnp.float32)
    if margin_mode == "subtract":
        return -jax.nn.log_sigmoid(diff - margin)
    return jnp.abs(margin) * -jax.nn.log_sigmoid(diff)


def aggregate_reward(attrs: Float[Array, "B A"],
                     weights: Optional[Sequence[float] | Float[Array, "A"]] = None) -> Float[Array, "B"]:
    """Scalar reward = attrs · weights; default: Nemotron-4-340B-Reward's weights over the 5 HelpSteer attributes."""
    w = jnp.asarray(NEMOTRON4_340B_REWARD_WEIGHTS if weights is None else weights, jnp.float32)
    if w.shape != (attrs.shape[-1],):
        raise ValueError(f"aggregate_reward: {attrs.shape[-1]} attributes but {w.shape[0]} weights; pass weights "
                         f"of length {attrs.shape[-1]} (defaults cover {HELPSTEER_ATTRIBUTES})")
    return jnp.einsum("...A,A->...", attrs.astype(jnp.float32), w)


def ranking_accuracy(r_chosen: np.ndarray, r_rejected: np.ndarray) -> float:
    """Share of pairs whose chosen reward is strictly higher (ties count half, like RewardBench)."""
    r_chosen, r_rejected = np.asarray(r_chosen, np.float64), np.asarray(r_rejected, np.float64)
    return float(np.mean((r_chosen > r_rejected) + 0.5 * (r_chosen == r_rejected)))
