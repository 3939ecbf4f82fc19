"""Sharded training == single-device training for every layout the issue lists, on 8 fake CPU devices."""

import jax
import numpy as np
import optax
import pytest

from nemotron_jax import config as C
from nemotron_jax.losses.common import masked_nll
from nemotron_jax.model import init_params
from nemotron_jax.parallel.training import build_sharded_training, make_forward
from nemotron_jax.train.optim import make_optimizer
from nemotron_jax.train.state import TrainState
from nemotron_jax.train.step import make_train_step

# Divisible toy dims: heads, kv heads, ffn, vocab by 4; d_model by 8; 8 layers = pipeline 4 x virtual 2.
CFG = C.toy_tiny(num_layers=8, num_heads=8, num_kv_heads=4, head_dim=8, ffn_dim=64, vocab_size=128)
ROWS, LEN = 8, 16


def make_loss(pcfg):
    fwd = make_forward(CFG, pcfg)

    def loss_fn(params, b):
        logits = fwd(params, b["inputs"], positions=b["positions"], segment_ids=b["segment_ids"])
        nll, count = masked_nll(logits, b["targets"], b["loss_mask"])
        return nll, {"count": count}

    return loss_fn


def packed_batch(accum=2, seed=0):
    """[A, ROWS, LEN] with two packed documents per row and some masked targets."""
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, CFG.vocab_size, (accum, ROWS, LEN + 1)).astype(np.int32)
    cut = 9
    seg = np.where(np.arange(LEN) < cut, 1, 2).astype(np.int32)
    pos = np.where(np.arange(LEN) < cut, np.arange(LEN), np.arange(LEN) - cut).astype(np.int32)
    mask = (rng.random((accum, ROWS, LEN)) < 0.8).astype(np.float32)
    shape = (accum, ROWS, LEN)
    return {"inputs": toks[..., :-1], "targets": toks[..., 1:], "loss_mask": mask,
            "positions": np.broadcast_to(pos, shape).copy(), "segment_ids": np.broadcast_to(seg, shape).copy()}


def reference_run(optimizer, steps):
    """Single device, plain model, no sharding."""
    pcfg = C.ParallelConfig(data=1)
    step = jax.jit(make_train_step(make_loss(pcfg), optimizer))
    state = TrainState.create(init_params(CFG, jax.random.key(0)), optimizer)
    metrics = []
    for i in range(steps):
        state, m = step(state, packed_batch(seed=i))
        metrics.append(m)
    return state, metrics


def sharded_run(pcfg, optimizer, steps):
    run = build_sharded_training(CFG, pcfg, optimizer, make_loss(pcfg), batch=ROWS, seq_len=LEN)
    state = run.init_fn(jax.random.key(0))
    metrics = []
    for i in range(steps):
        state, m = run.step_fn(state, run.put_batch(packed_batch(seed=i)))
        metrics.append(m)
    return run, state, metrics


def assert_same(state_a, metrics_a, state_b, metrics_b, rtol=2e-5, atol=2e-6):
    for ma, mb in zip(metrics_a, metrics_b):
        for k in ("loss", "grad_norm", "count"):
            np.testing.assert_allclose(ma[k], mb[k], rtol=rtol, err_msg=k)
    la, lb = jax.tree_util.tree_leaves_with_path(state_a.params), jax.tree.leaves(state_b.params)
    for (path, a), b in zip(la, lb):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol,
                                   err_msg=jax.tree_util.keystr(path))


LAYOUTS = {
    "data8": C.ParallelConfig(data=8),
    "fsdp8": C.ParallelConfig(data=1, fsdp=8),
    "tensor4_sp": C.ParallelConfig(data=2, tensor=4, sequence_parallel=True),
    "data2_tensor2_pipe2": C.ParallelConfig(data=2, tensor=2, pipeline=2, microbatches=2),
    "pipe4_virtual2_mb4": C.ParallelConfig(data=2, pipeline=4, virtual_stages=2, microbatches=4),
    "pipe2_fsdp2_tensor2": C.ParallelConfig(data=1, fsdp=2, tensor=2, pipeline=2, virtual_stages=2,
                                            microbatches=2),
}

SGD_LR = 0.5  # SGD: the update is -lr * grad, so equal parameters after a step mean equal gradients
ADAMW_LAYOUT = "data2_tensor2_pipe2"  # runs 3 AdamW steps with the distributed optimizer instead


def adamw():
    return make_optimizer(C.OptimConfig(lr=1e-2, weight_decay=0.1, clip_norm=1.0), 1e-2)


@pytest.fixture(scope="module")
def sgd_reference():
    return reference_run(optax.sgd(SGD_LR), 1)


@pytest.mark.parametrize("name", [n for n in LAYOUTS if n != ADAMW_LAYOUT])
def test_loss_and_gradients_match_single_device(name, sgd_reference):
    run, state, metrics = sharded_run(LAYOUTS[name], optax.sgd(SGD_LR), 1)
    assert_same(state, metrics, *sgd_reference)
    if name == "pipe4_virtual2_mb4":  # the stage rotation really is a device-to-device permute
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
        with run.activate():
            hlo = run.step_jit.lower(abstract, run.put_batch(packed_batch())).compile().as_text()
        assert "collective-permute" in hlo


def test_adamw_steps_with_distributed_optimizer_match_single_device():
    ref_state, ref_metrics = reference_run(adamw(), 3)
    pcfg = LAYOUTS[ADAMW_LAYOUT]
    assert pcfg.shard_optimizer
    run, state, metrics = sharded_run(pcfg, adamw(), 3)
    assert_same(state, metrics, ref_state, ref_metrics, rtol=1e-4, atol=1e-5)
    # After donated, compiled steps the arrays still carry exactly the RULES-derived shardings.
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(run.state_shardings)):
        assert got.sharding.is_equivalent_to(want, got.ndim), (got.sharding, want)
    mu = state.opt_state[1][0].mu["lm_head"]["kernel"]
    assert "data" in jax.tree.leaves(tuple(mu.sharding.spec))  # the moments really are split over data
