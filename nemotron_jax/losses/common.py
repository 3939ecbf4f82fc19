"""Token and sequence log-probabilities, and the masked next-token NLL every LM-style loss builds on.

Losses return sums and counts; the train step divides once, after gradient accumulation and device reduction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def token_logps(logits: Float[Array, "B T V"], targets: Int[Array, "B T"]) -> Float[Array, "B T"]:
    """log p(target_t | prefix) for every position, in fp32 (log-softmax via logsumexp, no full softmax kept)."""
    logits = logits.astype(jnp.float32)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(logits, axis=-1)


def sequence_logps(logits: Float[Array, "B T V"], targets: Int[Array, "B T"],
                   mask: Float[Array, "B T"]) -> Float[Array, "B"]:
    """Sum of masked token log-probs per row."""
    return jnp.sum(token_logps(logits, targets) * mask.astype(jnp.float32), axis=-1)


def masked_nll(logits: Float[Array, "B T V"], targets: Int[Array, "B T"],
               mask: Float[Array, "B T"]) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """(sum of -log p over masked targets, number of masked targets)."""
    mask = mask.astype(jnp.float32)
    return -jnp.sum(token_logps(logits, targets) * mask), jnp.sum(mask)
