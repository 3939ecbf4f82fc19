"""The Nemotron MLP: down(relu(up(x))^2), no gate, no biases."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from nemotron_jax.config import ModelConfig
from nemotron_jax.model.initializers import out_init, weight_init
from nemotron_jax.parallel.axes import ACT_MLP, ATTN_LENGTH, BATCH, EMBED, MLP, shard


class SquaredReLUMLP(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: Float[Array, "B T D"]) -> Float[Array, "B T D"]:
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        w_up = self.param("w_up", nn.with_logical_partitioning(weight_init(cfg), (EMBED, MLP)),
                          (cfg.d_model, cfg.ffn_dim))
        w_down = self.param("w_down", nn.with_logical_partitioning(out_init(cfg), (MLP, EMBED)),
                            (cfg.ffn_dim, cfg.d_model))
        h = jnp.einsum("BTD,DF->BTF", x.astype(dt), w_up.astype(dt))
        h = shard(jnp.square(jax.nn.relu(h)), (BATCH, ATTN_LENGTH, ACT_MLP))
        return jnp.einsum("BTF,FD->BTD", h, w_down.astype(dt))
