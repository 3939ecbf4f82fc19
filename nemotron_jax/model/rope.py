"""Partial rotary position embedding: only the first R = head_dim * rotary_fraction dims of each head rotate.

Layout is "rotate_half" (non-interleaved): dim i pairs with dim i + R/2. Frequencies are 1 / base^(2j / R) over
the rotary dims (denominator R, not head_dim). The remaining head_dim - R dims pass through unchanged.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def inverse_frequencies(rotary_dim: int, base: float) -> Float[Array, "R2"]:
    return 1.0 / (base ** (jnp.arange(0, rotary_dim, 2, dtype=jnp.float32) / rotary_dim))


def apply_rope(x: Float[Array, "B T N H"], positions: Int[Array, "B T"], rotary_dim: int, base: float, *,
               heads_first: bool = False) -> Float[Array, "B T N H"]:
    """Rotate the first `rotary_dim` dims of every head by angle position * inv_freq (computed in fp32).

    `x` is [B, T, N, H], or [B, N, T, H] with `heads_first` (the layout attention computes in).
    """
    angles = positions.astype(jnp.float32)[..., None] * inverse_frequencies(rotary_dim, base)  # [B, T, R/2]
    angles = jnp.concatenate([angles, angles], axis=-1)  # [B, T, R]
    angles = angles[:, None, :, :] if heads_first else angles[:, :, None, :]  # broadcast over heads
    x32 = x.astype(jnp.float32)
    rot, rest = x32[..., :rotary_dim], x32[..., rotary_dim:]
    half = rotary_dim // 2
    rotated_half = jnp.concatenate([-rot[..., half:], rot[..., :half]], axis=-1)
    rot = rot * jnp.cos(angles) + rotated_half * jnp.sin(angles)
    return jnp.concatenate([rot, rest], axis=-1).astype(x.dtype)
