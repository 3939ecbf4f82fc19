"""The training state: step counter, fp32 master parameters, optimizer state and non-finite-step counters."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

Params = Any


@flax.struct.dataclass
class TrainState:
    """Everything a train step reads and writes; a pytree, so it jits, shards, donates and checkpoints as one."""

    step: jax.Array  # int32 []: batches consumed (skipped steps count too, so data position and step agree)
    params: Params
    opt_state: optax.OptState
    nonfinite_in_a_row: jax.Array  # int32 []: consecutive skipped (non-finite) steps; reset by a good step
    nonfinite_total: jax.Array  # int32 []: skipped steps over the whole run

    @classmethod
    def create(cls, params: Params, optimizer: optax.GradientTransformation) -> "TrainState":
        """A fresh state at step 0; call inside the jitted init so the optimizer state gets its shardings.

        A donating step consumes the state's buffers, `params` included: pass a copy if the caller keeps them.
        """
        zero = lambda: jnp.zeros((), jnp.int32)  # distinct buffers, so the state can be donated
        return cls(step=zero(), params=params, opt_state=optimizer.init(params), nonfinite_in_a_row=zero(),
                   nonfinite_total=zero())
