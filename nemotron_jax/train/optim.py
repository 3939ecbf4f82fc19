"""The optimizer: global-norm clipping, then AdamW with decoupled weight decay that skips norms and biases.

    g   <- g * min(1, clip_norm / ||g||_2)                (global norm over every parameter)
    m   <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
    p   <- p - lr_t * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p * decay_mask)

`lr_t` comes from the schedule the loop supplies (a callable step -> lr, counted in optimizer updates, so a skipped
non-finite step does not advance it).
"""

from __future__ import annotations

from typing import Any, Callable, Union

import jax
import optax

from nemotron_jax.config import OptimConfig

# Parameters whose leaf name is one of these are never weight-decayed (LayerNorm scale/bias, any bias).
NO_DECAY_NAMES = ("scale", "bias")

Schedule = Union[float, Callable[[Any], Any]]


def _leaf_name(path: tuple) -> str:
    last = path[-1]
    return str(getattr(last, "key", getattr(last, "name", last)))


def decay_mask(params: Any) -> Any:
    """True for every leaf that gets weight decay: all but norm scales and biases."""
    return jax.tree_util.tree_map_with_path(lambda path, _: _leaf_name(path) not in NO_DECAY_NAMES, params)


def make_optimizer(optim_cfg: OptimConfig, lr_schedule: Schedule) -> optax.GradientTransformation:
    """Global-norm clip (skipped when clip_norm <= 0) followed by AdamW with the config's b1/b2/eps/weight decay."""
    adamw = optax.adamw(learning_rate=lr_schedule, b1=optim_cfg.b1, b2=optim_cfg.b2, eps=optim_cfg.eps,
                        weight_decay=optim_cfg.weight_decay, mask=decay_mask)
    if optim_cfg.clip_norm and optim_cfg.clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(optim_cfg.clip_norm), adamw)
    return adamw
