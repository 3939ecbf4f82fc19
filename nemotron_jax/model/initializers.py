"""Weight initialisers: normal(init_std); output projections scaled by 1/sqrt(2 * layers) (Megatron default)."""

from __future__ import annotations

import math

import flax.linen as nn

from nemotron_jax.config import ModelConfig


def weight_init(cfg: ModelConfig):
    return nn.initializers.normal(stddev=cfg.init_std)


def out_init(cfg: ModelConfig):
    std = cfg.init_std / math.sqrt(2.0 * cfg.num_layers) if cfg.scaled_out_init else cfg.init_std
    return nn.initializers.normal(stddev=std)
