"""Named rematerialisation policies, looked up by `ModelConfig.remat`."""

from __future__ import annotations

import jax

# None means "do not wrap the block in nn.remat at all".
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "save_dots": jax.checkpoint_policies.checkpoint_dots,
    "save_dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "save_all": jax.checkpoint_policies.everything_saveable,
}
