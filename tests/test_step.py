"""The pure train step: accumulation == one big batch, skip-on-non-finite, AdamW against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nemotron_jax import config as C
from nemotron_jax.losses.common import masked_nll
from nemotron_jax.model import forward, init_params
from nemotron_jax.parallel.training import compute_cast_mask
from nemotron_jax.train.optim import decay_mask, make_optimizer
from nemotron_jax.train.state import TrainState
from nemotron_jax.train.step import accumulate_gradients, make_train_step

CFG = C.toy_tiny()


def lm_loss(params, batch):
    logits = forward(params, batch["inputs"], CFG)
    nll, count = masked_nll(logits, batch["targets"], batch["loss_mask"])
    return nll, {"count": count, "nll": nll}


def lm_batch(rows, length, seed=0):
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, CFG.vocab_size, (rows, length + 1)).astype(np.int32)
    mask = (rng.random((rows, length)) < 0.7).astype(np.float32)  # uneven counts per microbatch
    return {"inputs": toks[:, :-1], "targets": toks[:, 1:], "loss_mask": mask}


def split(batch, a):
    return jax.tree.map(lambda x: x.reshape(a, x.shape[0] // a, *x.shape[1:]), batch)


@pytest.fixture(scope="module")
def params():
    return init_params(CFG, jax.random.key(0))


def test_accumulated_gradients_equal_full_batch(params):
    batch = lm_batch(4, 8)
    g_acc, l_acc, a_acc = jax.jit(accumulate_gradients, static_argnums=2)(params, split(batch, 4), lm_loss)
    (l_full, a_full), g_full = jax.value_and_grad(lm_loss, has_aux=True)(params, batch)
    np.testing.assert_allclose(l_acc, l_full, rtol=1e-5)
    np.testing.assert_allclose(a_acc["count"], a_full["count"])
    for ga, gf in zip(jax.tree.leaves(g_acc), jax.tree.leaves(g_full)):
        np.testing.assert_allclose(ga, gf, rtol=2e-4, atol=1e-6)


def test_step_with_accumulation_equals_one_big_batch(params):
    opt = make_optimizer(C.OptimConfig(lr=1e-2, warmup_steps=0), 1e-2)
    step = jax.jit(make_train_step(lm_loss, opt))
    batch = lm_batch(4, 8, seed=1)
    s_acc, m_acc = step(TrainState.create(params, opt), split(batch, 2))
    s_one, m_one = step(TrainState.create(params, opt), split(batch, 1))
    for k in ("loss", "grad_norm", "count", "nll"):
        np.testing.assert_allclose(m_acc[k], m_one[k], rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(m_acc["nll"], m_acc["loss"], rtol=1e-6)  # aux sums are reported per count
    for pa, po in zip(jax.tree.leaves(s_acc.params), jax.tree.leaves(s_one.params)):
        np.testing.assert_allclose(pa, po, rtol=1e-4, atol=1e-6)
    assert int(s_acc.step) == 1 and float(m_acc["skipped"]) == 0.0


def test_nonfinite_step_is_skipped_and_counted(params):
    opt = make_optimizer(C.OptimConfig(lr=1e-2), 1e-2)

    def loss(p, b):
        nll, aux = lm_loss(p, b)
        return nll * b["scale"][0], aux  # scale = nan poisons loss and grads

    step = jax.jit(make_train_step(loss, opt), donate_argnums=0)
    batch = lm_batch(2, 8, seed=2)
    good = split({**batch, "scale": np.ones(2, np.float32)}, 1)
    bad = split({**batch, "scale": np.full(2, np.nan, np.float32)}, 1)
    state = TrainState.create(jax.tree.map(jnp.copy, params), opt)  # the step donates it
    ref = jax.tree.map(np.asarray, (state.params, state.opt_state))
    for i in range(2):
        state, m = step(state, bad)
        assert float(m["skipped"]) == 1.0 and int(state.nonfinite_in_a_row) == i + 1
    for a, b in zip(jax.tree.leaves((state.params, state.opt_state)), jax.tree.leaves(ref)):
        np.testing.assert_array_equal(a, b)
    state, m = step(state, good)
    assert float(m["skipped"]) == 0.0
    assert (int(state.step), int(state.nonfinite_in_a_row), int(state.nonfinite_total)) == (3, 0, 2)
    assert not np.allclose(state.params["lm_head"]["kernel"], ref[0]["lm_head"]["kernel"])


def numpy_adamw(p, grads_seq, lrs, *, b1, b2, eps, wd, clip, decay):
    """Reference: global-norm clip, Adam with bias correction, decoupled decay on masked leaves."""
    p = {k: v.astype(np.float64).copy() for k, v in p.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t, (g, lr) in enumerate(zip(grads_seq, lrs), start=1):
        norm = np.sqrt(sum(np.sum(x.astype(np.float64) ** 2) for x in g(p).values()))
        gt = {k: x * min(1.0, clip / norm) for k, x in g(p).items()}
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * gt[k]
            v[k] = b2 * v[k] + (1 - b2) * gt[k] ** 2
            upd = (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)
            p[k] = p[k] - lr * (upd + (wd * p[k] if decay[k] else 0.0))
    return p


def test_adamw_matches_numpy_reference():
    rng = np.random.default_rng(3)
    p0 = {"kernel": rng.normal(size=(3, 2)).astype(np.float32), "bias": rng.normal(size=2).astype(np.float32),
          "scale": rng.normal(size=2).astype(np.float32)}
    target = rng.normal(size=(3, 2)) * 3

    def np_grads(p):  # gradient of 0.5 * ||W - target||^2 + ||b||^2 + 0.5 * ||s||^2 * 4
        return {"kernel": p["kernel"] - target, "bias": 2 * p["bias"], "scale": 4 * p["scale"]}

    def loss(p, _):
        val = 0.5 * jnp.sum((p["kernel"] - target) ** 2) + jnp.sum(p["bias"] ** 2) + 2 * jnp.sum(p["scale"] ** 2)
        return val, {"count": jnp.ones(())}

    cfg = C.OptimConfig(lr=0.1, b1=0.8, b2=0.9, eps=1e-3, weight_decay=0.3, clip_norm=1.5)
    schedule = lambda count: 0.1 / (1.0 + count)
    opt = make_optimizer(cfg, schedule)
    state = TrainState.create(jax.tree.map(jnp.asarray, p0), opt)
    step = jax.jit(make_train_step(loss, opt))
    for _ in range(3):
        state, metrics = step(state, {"x": np.zeros((1, 1), np.float32)})
    want = numpy_adamw(p0, [np_grads] * 3, [0.1, 0.05, 0.1 / 3], b1=0.8, b2=0.9, eps=1e-3, wd=0.3, clip=1.5,
                       decay={"kernel": True, "bias": False, "scale": False})
    for k in p0:
        np.testing.assert_allclose(state.params[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_decay_mask_skips_norms_and_biases(params):
    mask = decay_mask(params)
    assert mask["lm_head"]["kernel"] and mask["embed"]["embedding"]
    assert not mask["final_norm"]["scale"] and not mask["final_norm"]["bias"]
    assert mask["layers"]["attn"]["wq"] and not mask["layers"]["attn_norm"]["scale"]


def test_missing_count_is_a_clear_error(params):
    opt = optax.sgd(0.1)
    step = make_train_step(lambda p, b: (jnp.sum(p["final_norm"]["bias"]), {"n": 1.0}), opt)
    with pytest.raises(ValueError, match="aux\\['count'\\]"):
        step(TrainState.create(params, opt), {"x": np.zeros((1, 1))})


def test_bf16_compute_copy_gives_the_same_step():
    cfg = C.toy_tiny(dtype="bfloat16")

    def loss(p, b):
        nll, count = masked_nll(forward(p, b["inputs"], cfg), b["targets"], b["loss_mask"])
        return nll, {"count": count}

    def compute(p):  # what the sharded step does: matmul weights to bf16 once per step
        return jax.tree.map(lambda x, w: x.astype(jnp.bfloat16) if w else x, p, compute_cast_mask(p))

    opt = optax.sgd(0.5)
    params = init_params(cfg, jax.random.key(4))
    batch = split(lm_batch(4, 8, seed=4), 2)
    plain, m_plain = jax.jit(make_train_step(loss, opt))(TrainState.create(params, opt), batch)
    cast, m_cast = jax.jit(make_train_step(loss, opt, compute_params=compute))(TrainState.create(params, opt), batch)
    np.testing.assert_allclose(m_cast["loss"], m_plain["loss"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(cast.params), jax.tree.leaves(plain.params)):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
