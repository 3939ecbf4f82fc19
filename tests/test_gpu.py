"""GPU checks (`NEMOTRON_GPU_TESTS=1 pytest -m gpu`): the GPU computes what the CPU computes.

Each test runs the same function on the GPU and on the host CPU in one process and compares the two. fp32
comparisons pin matmuls to full fp32 (XLA's GPU default for fp32 dots is TF32). The cuDNN attention kernel is
compared with the einsum reference on the same bf16 inputs, forward and backward, causal and packed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemotron_jax import config as C
from nemotron_jax.inference.sampler import Sampler, SamplingParams
from nemotron_jax.losses.common import masked_nll
from nemotron_jax.model import forward, forward_cached, init_cache, init_params
from nemotron_jax.model.attention import fused_attention, training_mask, xla_attention
from nemotron_jax.train.optim import make_optimizer
from nemotron_jax.train.state import TrainState
from nemotron_jax.train.step import make_train_step

pytestmark = pytest.mark.gpu

CFG = C.toy_tiny(vocab_size=300, max_seq_len=64)
# cuDNN's flash kernel needs bf16/fp16 and a head dim that is a multiple of 8: bench-cpu's 64, two layers.
BF16_CFG = C.bench_cpu(vocab_size=512, num_layers=2, max_seq_len=128, dtype="bfloat16")


@pytest.fixture(scope="module")
def gpu():
    return jax.devices("gpu")[0]


@pytest.fixture(scope="module")
def cpu():
    return jax.devices("cpu")[0]


def run_on(device, fn, *args):
    """jit(fn)(*args) with every input on `device`, fp32 dots at full precision; numpy results."""
    args = jax.device_put(args, device)
    with jax.default_matmul_precision("highest"):
        return jax.tree.map(np.asarray, jax.jit(fn)(*args))


def packed_batch(cfg, rows, length, seed=0):
    """Random tokens in rows of two packed documents each (segment ids 1, 2; positions restart)."""
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, cfg.vocab_size, (rows, length + 1)).astype(np.int32)
    cut = length // 3
    seg = np.where(np.arange(length) < cut, 1, 2)[None].repeat(rows, 0).astype(np.int32)
    pos = np.where(np.arange(length) < cut, np.arange(length), np.arange(length) - cut)[None].repeat(rows, 0)
    return {"inputs": toks[:, :-1], "targets": toks[:, 1:], "segment_ids": seg, "positions": pos.astype(np.int32),
            "loss_mask": np.ones((rows, length), np.float32)}


def test_forward_on_gpu_equals_cpu_fp32(gpu, cpu):
    params = init_params(CFG, jax.random.key(0))
    b = packed_batch(CFG, 3, 48)

    def fn(p, b):
        return forward(p, b["inputs"], CFG, positions=b["positions"], segment_ids=b["segment_ids"])

    got, want = run_on(gpu, fn, params, b), run_on(cpu, fn, params, b)
    assert np.abs(want).max() > 0.1  # not a trivially small output
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_train_steps_on_gpu_equal_cpu_fp32(gpu, cpu):
    """Three AdamW steps (fwd + bwd + clip + update): the same losses and the same weights on both."""
    opt = make_optimizer(C.OptimConfig(lr=1e-3, warmup_steps=1), 1e-3)

    def loss_fn(p, b):
        logits = forward(p, b["inputs"], CFG, positions=b["positions"], segment_ids=b["segment_ids"])
        s, n = masked_nll(logits, b["targets"], b["loss_mask"])
        return s, {"count": n}

    step = make_train_step(loss_fn, opt)

    def three_steps(params, batch):
        state, losses = TrainState.create(params, opt), []
        for _ in range(3):
            state, m = step(state, jax.tree.map(lambda x: x[None], batch))
            losses.append(m["loss"])
        return jnp.stack(losses), state.params

    params, b = init_params(CFG, jax.random.key(1)), packed_batch(CFG, 4, 32, seed=1)
    (l_gpu, p_gpu), (l_cpu, p_cpu) = run_on(gpu, three_steps, params, b), run_on(cpu, three_steps, params, b)
    assert l_cpu[2] < l_cpu[0] - 0.05  # the steps really train
    np.testing.assert_allclose(l_gpu, l_cpu, rtol=1e-5)
    for g, c in zip(jax.tree.leaves(p_gpu), jax.tree.leaves(p_cpu)):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)


def test_greedy_decode_on_gpu_equals_cpu(gpu, cpu):
    """The sampler end to end (prefill, chunked decode, log-probs) on each device: the same tokens."""
    params = init_params(CFG, jax.random.key(2))
    prompts = [[5, 17, 99, 250, 10, 41, 8], [120, 121], [9, 10, 11, 12, 13]]
    sp = SamplingParams(max_new_tokens=12, temperature=0.0, ignore_eos=True, logprobs=1)
    out = {}
    for name, dev in (("gpu", gpu), ("cpu", cpu)):
        with jax.default_device(dev), jax.default_matmul_precision("highest"):
            out[name] = Sampler(jax.device_put(params, dev), CFG, chunk=4).generate(prompts, sp)
    for g, c in zip(out["gpu"], out["cpu"]):
        assert g[0].token_ids == c[0].token_ids
        np.testing.assert_allclose(g[0].logprobs, c[0].logprobs, atol=1e-4)


def _qkv(seed, b=2, n=8, k=2, t=128, h=64):
    ks = jax.random.split(jax.random.key(seed), 3)
    return tuple(jax.random.normal(kk, (b, nh, t, h), jnp.float32).astype(jnp.bfloat16)
                 for kk, nh in zip(ks, (n, k, k)))


@pytest.mark.parametrize("packed", [False, True], ids=["causal", "packed"])
def test_cudnn_attention_equals_reference_forward_and_backward(gpu, packed):
    """cuDNN flash attention on bf16 GQA inputs against the fp32 einsum reference on the same values."""
    q, k, v = _qkv(3)
    b, t = q.shape[0], q.shape[2]
    seg = jnp.asarray(np.where(np.arange(t) < 50, 1, 2)[None].repeat(b, 0)) if packed else None
    mask = training_mask(seg, b, t)
    w = jax.random.normal(jax.random.key(4), q.shape, jnp.float32)  # a loss that weighs every output

    def cudnn(q, k, v):
        return fused_attention(q, k, v, mask if packed else None, "cudnn")

    def reference(q, k, v):
        return xla_attention(*(x.astype(jnp.float32) for x in (q, k, v)), mask)

    def loss_and_grads(attn):
        return jax.value_and_grad(lambda q, k, v: jnp.sum(attn(q, k, v).astype(jnp.float32) * w),
                                  argnums=(0, 1, 2))

    out, want = run_on(gpu, cudnn, q, k, v), run_on(gpu, reference, q, k, v)
    np.testing.assert_allclose(out.astype(np.float32), want, atol=2e-2, rtol=2e-2)
    (_, g_cudnn), (_, g_ref) = run_on(gpu, loss_and_grads(cudnn), q, k, v), run_on(gpu, loss_and_grads(reference),
                                                                                     q, k, v)
    for name, a, r in zip("qkv", g_cudnn, g_ref):
        a = a.astype(np.float32)
        rel = np.linalg.norm(a - r) / np.linalg.norm(r)
        assert rel < 2e-2, f"d{name}: relative error {rel:.3g}"


@pytest.mark.parametrize("impl", ["fused", "cudnn"])
def test_bf16_model_loss_and_grads_match_across_attention_cores(gpu, impl):
    """The whole bf16 model with each fused core against the einsum core: loss and gradient norm agree."""
    params = init_params(BF16_CFG, jax.random.key(5))
    b = packed_batch(BF16_CFG, 2, 128, seed=5)

    def loss_and_grad_norm(cfg):
        def loss(p):
            logits = forward(p, b["inputs"], cfg, positions=b["positions"], segment_ids=b["segment_ids"])
            s, n = masked_nll(logits, b["targets"], b["loss_mask"])
            return s / n

        def fn(p):
            val, g = jax.value_and_grad(loss)(p)
            return val, optax_global_norm(g)
        return fn

    ref = run_on(gpu, loss_and_grad_norm(BF16_CFG.replace(attention_impl="xla")), params)
    got = run_on(gpu, loss_and_grad_norm(BF16_CFG.replace(attention_impl=impl)), params)
    assert abs(ref[0] - np.log(BF16_CFG.vocab_size)) < 0.5  # a fresh model: loss near log V
    np.testing.assert_allclose(got[0], ref[0], rtol=2e-3)
    np.testing.assert_allclose(got[1], ref[1], rtol=3e-2)


def optax_global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def test_cudnn_cached_decode_matches_its_full_forward(gpu):
    """A cuDNN prefill (fresh cache: attention over the prompt with the fused core) + one-token decode steps
    through the keys-last cache: each step's logits are the full forward's at that position (bf16 tolerance)."""
    cfg = BF16_CFG.replace(attention_impl="cudnn")
    params = init_params(cfg, jax.random.key(6))
    rng = np.random.default_rng(6)
    seq = rng.integers(0, cfg.vocab_size, (2, 40)).astype(np.int32)
    p = 32

    def cached(params, seq):
        cache = init_cache(cfg, 2, 64)
        pos = jnp.broadcast_to(jnp.arange(p), (2, p))
        first, cache = forward_cached(params, seq[:, :p], cfg, cache, positions=pos, write_index=jnp.zeros(2, int),
                                      fresh=True)
        steps = []
        for i in range(p, seq.shape[1]):
            lg, cache = forward_cached(params, seq[:, i:i + 1], cfg, cache, positions=jnp.full((2, 1), i),
                                       write_index=jnp.full((2,), i))
            steps.append(lg[:, 0])
        return jnp.concatenate([first, jnp.stack(steps, 1)], axis=1)

    got = run_on(gpu, cached, params, seq)
    want = run_on(gpu, lambda prm, s: forward(prm, s, cfg), params, seq)
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(got, want, atol=5e-2, rtol=5e-2)
    assert (got[:, p:].argmax(-1) == want[:, p:].argmax(-1)).mean() > 0.9
