"""Supervised fine-tuning loss: next-token NLL over the tokens the data layer marked trainable (assistant turns)."""

from __future__ import annotations

from jaxtyping import Array, Float, Int

from nemotron_jax.losses.common import masked_nll


def sft_loss(logits: Float[Array, "B T V"], targets: Int[Array, "B T"],
             loss_mask: Float[Array, "B T"]) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
    """(sum of −log p over trained tokens, {"nll_sum", "count"}) — divide by count once after accumulation."""
    nll, count = masked_nll(logits, targets, loss_mask)
    return nll, {"nll_sum": nll, "count": count}
