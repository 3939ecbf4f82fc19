"""LayerNorm1p: a real LayerNorm (mean-subtracted, with bias) whose stored scale is zero-centred (applied as 1 + w)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from nemotron_jax.parallel.axes import NORM


def layer_norm_1p(x: Float[Array, "... D"], scale: Float[Array, "D"], bias: Float[Array, "D"],
                  eps: float) -> Float[Array, "... D"]:
    """fp32 LayerNorm with applied scale `1 + scale`; returns fp32 (callers cast to their compute dtype)."""
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    y = (x - mean) * jax.lax.rsqrt(var + eps)
    return y * (1.0 + scale.astype(jnp.float32)) + bias.astype(jnp.float32)


class LayerNorm1p(nn.Module):
    """Parameters `scale` and `bias` both start at zero, so a fresh norm is the identity LayerNorm."""

    eps: float = 1e-5
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Float[Array, "... D"]) -> Float[Array, "... D"]:
        d = x.shape[-1]
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.zeros, (NORM,)), (d,))
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, (NORM,)), (d,))
        return layer_norm_1p(x, scale, bias, self.eps).astype(self.dtype)
