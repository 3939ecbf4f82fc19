"""The bucketed log-likelihood scorer against a direct, unpadded, per-example forward in numpy."""

import jax
import numpy as np
import pytest

from nemotron_jax import config
from nemotron_jax.eval import scoring
from nemotron_jax.eval.text import split_continuation
from nemotron_jax.inference.byte_tokenizer import ByteTokenizer
from nemotron_jax.model import forward, init_params

CFG = config.toy_tiny(vocab_size=264, max_seq_len=32)


@pytest.fixture(scope="module")
def params():
    return init_params(CFG, jax.random.PRNGKey(0))


def _direct(params, ctx, cont):
    """Per-example reference: one unpadded forward, numpy log-softmax, sum over the continuation."""
    row = (list(ctx) + list(cont))[-(CFG.max_seq_len + 1):]
    # Causal attention: right padding to the window cannot change earlier logits, and one shape compiles once.
    padded = np.zeros((1, CFG.max_seq_len), np.int32)
    padded[0, :len(row) - 1] = row[:-1]
    logits = np.asarray(forward(params, padded, CFG)[0, :len(row) - 1], np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    tgt = np.array(row[1:])
    pos = np.arange(len(row) - 1 - len(cont), len(row) - 1)
    return logp[pos, tgt[pos]].sum(), bool(np.all(logits[pos].argmax(-1) == tgt[pos]))


def test_matches_direct_forward_with_ragged_and_truncated_rows(params):
    rng = np.random.default_rng(0)
    ctxs = [list(rng.integers(4, 264, n)) for n in (1, 3, 7, 12, 20, 40)]  # 40 + cont > 32: left-truncated
    conts = [list(rng.integers(4, 264, n)) for n in (1, 5, 2, 9, 4, 3)]
    lp, gr = scoring.loglikelihood(params, CFG, ctxs, conts, policy=scoring.BucketPolicy(min_len=4, token_budget=64))
    for i, (c, k) in enumerate(zip(ctxs, conts)):
        ref, ref_greedy = _direct(params, c, k)
        np.testing.assert_allclose(lp[i], ref, rtol=1e-5, atol=1e-4, err_msg=f"request {i}")
        assert gr[i] == ref_greedy


def test_requests_sharing_inputs_are_scored_as_alternatives(params):
    """MMLU-style: one context, single-token choices (and a duplicate); multi-token ones differing at the end."""
    ctx, stem = [2, 40, 41, 42], [50, 51]
    reqs = [(ctx, [t]) for t in (60, 61, 62, 63, 60)] + [(ctx, stem + [t]) for t in (70, 71, 72)] + [([2, 9], [9])]
    lp, gr = scoring.loglikelihood(params, CFG, [r[0] for r in reqs], [r[1] for r in reqs])
    for i, (c, k) in enumerate(reqs):
        ref, ref_greedy = _direct(params, c, k)
        np.testing.assert_allclose(lp[i], ref, rtol=1e-5, atol=1e-4, err_msg=f"request {i}")
        assert gr[i] == ref_greedy


def test_greedy_flag_true_for_the_models_own_argmax(params):
    ctx = [2, 50, 60]
    logits = forward(params, np.array([ctx + [0] * (CFG.max_seq_len - 3)], np.int32), CFG)
    best = int(np.argmax(logits[0, 2]))
    _, gr = scoring.loglikelihood(params, CFG, [ctx, ctx], [[best], [(best + 1) % 264]])
    assert gr.tolist() == [True, False]


def test_buckets_are_powers_of_two_and_cover_every_row():
    lengths = [3, 17, 17, 5, 30, 1, 9, 16]
    batches = scoring.plan_batches(lengths, 32, scoring.BucketPolicy(min_len=4, token_budget=64, max_batch=8))
    assert sorted(i for idx, _, _ in batches for i in idx) == list(range(len(lengths)))
    for idx, b, t in batches:
        assert b & (b - 1) == 0 and t & (t - 1) == 0 and b * t <= 64 and len(idx) <= b
        assert all(lengths[i] <= t for i in idx)


def test_few_compiles_for_many_examples(params):
    rng = np.random.default_rng(1)
    before = scoring.compiled_shapes()
    ctxs = [list(rng.integers(4, 264, n)) for n in rng.integers(1, 12, 40)]
    conts = [list(rng.integers(4, 264, n)) for n in rng.integers(1, 4, 40)]
    scoring.loglikelihood(params, CFG, ctxs, conts, policy=scoring.BucketPolicy(min_len=16, token_budget=256))
    if before is not None:
        assert scoring.compiled_shapes() - before <= 2  # (16, 16) plus at most one smaller tail batch


def test_model_scorer_text_pairs_and_boundary_split(params):
    tok = ByteTokenizer(CFG.vocab_size)
    ctx, cont = split_continuation(tok, "Answer: ", "B")
    assert tok.decode(ctx) == "Answer:" and tok.decode(cont) == " B"
    scorer = scoring.ModelScorer(params, CFG, tok)
    (lp, _), = scorer.loglikelihood([("Answer: ", "B")])
    ref, _ = _direct(params, [CFG.bos_id] + ctx, cont)
    np.testing.assert_allclose(lp, ref, rtol=1e-5, atol=1e-4)


def test_bad_requests_fail_clearly(params):
    with pytest.raises(ValueError, match="empty continuation"):
        scoring.loglikelihood(params, CFG, [[2]], [[]])
    with pytest.raises(ValueError, match="max_seq_len"):
        scoring.loglikelihood(params, CFG, [[2]], [[5] * 40])
