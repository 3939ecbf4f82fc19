"""Learning-rate schedules, as functions of the optimizer step, built from an `OptimConfig`.

Every schedule starts with a linear warmup that reaches the peak LR on the last warmup step
(step s < W gets lr * (s + 1) / W, so the first update is not wasted at LR 0). After warmup:

    cosine    lr -> min_lr along half a cosine over `decay_steps`, then min_lr
    linear    lr -> min_lr in a straight line over `decay_steps`, then min_lr
    constant  lr for ever
    wsd       warmup-stable-decay: lr until the last `wsd_decay_fraction` of the run, then a decay to min_lr shaped
              linear, cosine, or sqrt (1 - sqrt(x), Hägele et al. 2024: drops fastest at the start of the decay).
              With a large fraction and a low min_lr this is the steep-decay schedule of continued pretraining.

`decay_steps` defaults to the run's total steps minus warmup.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from nemotron_jax.config import ConfigError, OptimConfig

_DECAY_SHAPES = {
    "linear": lambda x: 1.0 - x,
    "cosine": lambda x: 0.5 * (1.0 + jnp.cos(jnp.pi * x)),
    "sqrt": lambda x: 1.0 - jnp.sqrt(x),
}


def _warmup(peak: float, warmup_steps: int, step: Int[Array, ""]) -> Float[Array, ""]:
    return peak * jnp.minimum(step + 1.0, warmup_steps) / max(warmup_steps, 1)


def _decay(cfg: OptimConfig, shape: str, progress: Float[Array, ""]) -> Float[Array, ""]:
    """LR at `progress` in [0, 1] of a decay from cfg.lr to cfg.min_lr."""
    x = jnp.clip(progress, 0.0, 1.0)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * _DECAY_SHAPES[shape](x)


def make_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """The LR schedule of `cfg` for a run of `total_steps` optimizer steps."""
    if total_steps < 1:
        raise ConfigError(f"total_steps must be >= 1 to build an LR schedule, got {total_steps}")
    if cfg.wsd_decay_shape not in _DECAY_SHAPES:
        raise ConfigError(f"wsd_decay_shape must be one of {sorted(_DECAY_SHAPES)}, got {cfg.wsd_decay_shape!r}")
    warmup = cfg.warmup_steps
    if warmup > total_steps:
        raise ConfigError(f"warmup_steps={warmup} exceeds the run's {total_steps} steps; lower optim.warmup_steps")
    decay = cfg.decay_steps if cfg.decay_steps is not None else max(total_steps - warmup, 1)
    if decay < 1:
        raise ConfigError(f"decay_steps must be >= 1, got {decay}")
    wsd_decay = max(int(round(cfg.wsd_decay_fraction * total_steps)), 1)
    wsd_start = max(total_steps - wsd_decay, warmup)

    def after_warmup(step: Array) -> Array:
        if cfg.schedule == "constant":
            return jnp.asarray(cfg.lr, jnp.float32)
        if cfg.schedule == "cosine":
            return _decay(cfg, "cosine", (step - warmup) / decay)
        if cfg.schedule == "linear":
            return _decay(cfg, "linear", (step - warmup) / decay)
        # wsd: the decay's last step (total_steps - 1) lands exactly on min_lr.
        progress = (step - wsd_start + 1.0) / max(total_steps - wsd_start, 1)
        return jnp.where(step < wsd_start, cfg.lr, _decay(cfg, cfg.wsd_decay_shape, progress))

    def schedule(step: Int[Array, ""]) -> Float[Array, ""]:
        step = jnp.asarray(step, jnp.float32)
        lr = jnp.where(step < warmup, _warmup(cfg.lr, warmup, step), after_warmup(step))
        return lr.astype(jnp.float32)

    return schedule
