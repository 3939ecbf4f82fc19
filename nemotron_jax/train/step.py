"""One pure train step: accumulate gradients over microbatches, divide once, skip non-finite updates.

    batch arrays: [A, b, ...]  (A accumulation microbatches of b rows)
    for a in range(A):                     # lax.scan, one microbatch's activations live at a time
        (loss_a, aux_a), g_a = value_and_grad(loss_fn)(params, batch[a])
        sums += (loss_a, aux_a, g_a)       # every loss_fn output is a SUM over its microbatch
    n = sum_a aux_a["count"]
    loss, grads = loss_sum / n, grad_sum / n
    if loss and ||grads|| are finite: params, opt_state = optimizer.update(grads, ...)
    else: keep params and opt_state, count the skip

The contract for `loss_fn(params, microbatch) -> (loss_sum, aux)`: `aux["count"]` is the normaliser, and every
aux entry is a sum over the microbatch, so accumulation (and data-parallel reduction under jit) is exact.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from nemotron_jax.train.state import Params, TrainState

LossFn = Callable[[Params, Any], tuple[Float[Array, ""], dict[str, Float[Array, ""]]]]


def _check_aux(aux: dict) -> None:
    if "count" not in aux:
        raise ValueError("loss_fn must return aux['count'] (the normaliser, e.g. the number of target tokens); "
                         f"it returned aux keys {sorted(aux)}")


def accumulate_gradients(params: Params, batch: Any, loss_fn: LossFn,
                         grad_layout: Optional[Callable[[Params], Params]] = None
                         ) -> tuple[Params, Float[Array, ""], dict]:
    """Sums over the leading accumulation axis: (grad_sum, loss_sum, aux_sums), all fp32.

    `grad_layout` (e.g. a sharding constraint) is applied to the running gradient sum, so a data-sharded sum
    turns each microbatch's all-reduce into a reduce-scatter.
    """
    layout = grad_layout or (lambda g: g)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    first = jax.tree.map(lambda x: x[0], batch)
    _, aux_shape = jax.eval_shape(loss_fn, params, first)
    _check_aux(aux_shape)

    def body(carry, micro):
        g_sum, l_sum, a_sum = carry
        (loss, aux), grads = grad_fn(params, micro)
        g_sum = layout(jax.tree.map(lambda s, g: s + g.astype(jnp.float32), g_sum, grads))
        a_sum = {k: a_sum[k] + jnp.asarray(aux[k], jnp.float32) for k in a_sum}
        return (g_sum, l_sum + loss.astype(jnp.float32), a_sum), None

    zeros = (layout(jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)), jnp.zeros((), jnp.float32),
             {k: jnp.zeros((), jnp.float32) for k in aux_shape})
    if jax.tree.leaves(batch)[0].shape[0] == 1:  # no accumulation: skip the zero accumulator (one grad buffer)
        return body(zeros, first)[0]
    (g_sum, l_sum, a_sum), _ = jax.lax.scan(body, zeros, batch)
    return g_sum, l_sum, a_sum


def global_norm(tree: Any) -> Float[Array, ""]:
    """sqrt of the sum of squares over every leaf, in fp32."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def _safe_divisor(count: Float[Array, ""]) -> Float[Array, ""]:
    # An all-masked step (count 0) has zero sums; dividing by 1 keeps it finite instead of 0/0.
    return jnp.where(count > 0, count, 1.0)


def train_step(state: TrainState, batch: Any, *, loss_fn: LossFn,
               optimizer: optax.GradientTransformation, compute_params: Optional[Callable[[Params], Params]] = None,
               grad_layout: Optional[Callable[[Params], Params]] = None
               ) -> tuple[TrainState, dict[str, Float[Array, ""]]]:
    """One optimizer update from a batch with a leading accumulation axis; returns (new state, metrics).

    `compute_params(master) -> compute copy` (cast to the compute dtype, gathered to the compute layout) runs once
    per step; gradients are taken with respect to that copy, summed in fp32 and applied to the fp32 masters.
    """
    params = state.params if compute_params is None else compute_params(state.params)
    g_sum, l_sum, a_sum = accumulate_gradients(params, batch, loss_fn, grad_layout)
    count = a_sum["count"]
    div = _safe_divisor(count)
    grads = jax.tree.map(lambda g: g / div, g_sum)
    loss = l_sum / div
    grad_norm = global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    updates, new_opt = optimizer.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jnp.where(finite, new, old)
    in_a_row = jnp.where(finite, 0, state.nonfinite_in_a_row + 1).astype(jnp.int32)
    new_state = state.replace(
        step=state.step + 1,
        params=jax.tree.map(keep, new_params, state.params),
        opt_state=jax.tree.map(keep, new_opt, state.opt_state),
        nonfinite_in_a_row=in_a_row,
        nonfinite_total=state.nonfinite_total + (~finite).astype(jnp.int32),
    )
    metrics = {"loss": loss, "grad_norm": grad_norm, "count": count, "skipped": (~finite).astype(jnp.float32),
               "nonfinite_in_a_row": in_a_row.astype(jnp.float32)}
    # Aux entries are sums; report them per count. Core metric names win over a clashing aux key.
    metrics.update({k: v / div for k, v in a_sum.items() if k not in metrics})
    return new_state, metrics


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, *,
                    compute_params: Optional[Callable[[Params], Params]] = None,
                    grad_layout: Optional[Callable[[Params], Params]] = None) -> Callable:
    """`step(state, batch) -> (state, metrics)`, ready for `jax.jit(step, donate_argnums=0)`."""
    return functools.partial(train_step, loss_fn=loss_fn, optimizer=optimizer, compute_params=compute_params,
                             grad_layout=grad_layout)
