"""The KV-cache sampler against independent computations: full-sequence `forward`, numpy filters, hand-made stops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemotron_jax import config as C
from nemotron_jax.inference.byte_tokenizer import ByteTokenizer
from nemotron_jax.inference.decode_batch import DecodeBatch
from nemotron_jax.inference.sampler import (Sampler, SamplingParams, bucket, filter_logits, find_stop,
                                            first_argmax, sample_tokens)
from nemotron_jax.model import forward, forward_cached, fuse_qkv, init_cache, init_params

CFG = C.toy_tiny(vocab_size=300, max_seq_len=64)
PROMPTS = [[5, 17, 99, 250, 3 + 7, 41, 8], [120, 121], [9, 10, 11, 12, 13]]  # ragged on purpose
NEW = 8


@pytest.fixture(scope="module")
def params():
    return init_params(CFG, jax.random.key(0))


@pytest.fixture(scope="module")
def sampler(params):
    return Sampler(params, CFG, tokenizer=ByteTokenizer(CFG.vocab_size), chunk=4)


@jax.jit
def _full_logits(params, tokens):
    return forward(params, tokens, CFG)


def _padded_logits(params, seq, width=32):
    """Full-forward logits of one sequence, right-padded to a fixed width (one compile for every length)."""
    row = np.zeros((1, width), np.int32)
    row[0, :len(seq)] = seq
    return np.asarray(_full_logits(params, jnp.asarray(row))[0, :len(seq)])


_cached_step = jax.jit(lambda params, tok, cache, pos, write: forward_cached(params, tok, CFG, cache, positions=pos,
                                                                            write_index=write))


def _reference_greedy(params, prompt, steps):
    """Step-by-step argmax of the full forward (fixed padded width: causality makes the padding irrelevant)."""
    width = 32
    seq = list(prompt)
    for _ in range(steps):
        row = np.zeros((1, width), np.int32)
        row[0, :len(seq)] = seq
        seq.append(int(jnp.argmax(_full_logits(params, jnp.asarray(row))[0, len(seq) - 1])))
    return seq[len(prompt):]


@pytest.mark.parametrize("layout", ["stacked", "fused"])
def test_cached_decode_matches_full_forward_logits_ragged(params, layout):
    """Prefill right-padded ragged prompts, then feed a fixed continuation one token at a time into slots after the
    padding gap (as the sampler does): every position's logits equal the full forward's (fp32). `fused` runs the
    serving layout (one wqkv projection per layer, split into q, k, v) against the full forward of the originals."""
    full_params = params
    if layout == "fused":
        params = fuse_qkv(params)
        assert set(params["layers"][0]["attn"]) == {"wqkv", "wo"}
        assert params["layers"][0]["attn"]["wqkv"].shape == (CFG.d_model, CFG.num_heads + 2 * CFG.num_kv_heads,
                                                             CFG.head_dim)
    cont = [[7, 8, 9, 10], [11, 12, 13, 14], [15, 16, 17, 18]]
    b, p = len(PROMPTS), 8
    lens = np.array([len(x) for x in PROMPTS], np.int32)
    toks = np.zeros((b, p), np.int32)
    for i, x in enumerate(PROMPTS):
        toks[i, :len(x)] = x
    pos = np.where(np.arange(p)[None] < lens[:, None], np.arange(p)[None], -1)
    cache = init_cache(CFG, b, p + 4)
    prefill_logits, cache = _cached_step(params, jnp.asarray(toks), cache, jnp.asarray(pos), jnp.zeros(b, jnp.int32))
    only_last = jax.jit(lambda prm, c: forward_cached(prm, jnp.asarray(toks), CFG, c, positions=jnp.asarray(pos),
                                                      write_index=jnp.zeros(b, jnp.int32),
                                                      logits_index=jnp.asarray(lens - 1)))
    last, _ = only_last(params, init_cache(CFG, b, p + 4))
    np.testing.assert_allclose(np.asarray(last[:, 0]), np.asarray(prefill_logits)[np.arange(b), lens - 1], atol=1e-5)
    step_logits = []
    for i in range(4):
        tok = jnp.asarray([[c[i]] for c in cont], jnp.int32)
        lg, cache = _cached_step(params, tok, cache, jnp.asarray(lens + i)[:, None], jnp.full((b,), p + i, jnp.int32))
        step_logits.append(lg[:, 0])
    for r in range(b):
        full = _padded_logits(full_params, PROMPTS[r] + cont[r])
        n = lens[r]
        np.testing.assert_allclose(np.asarray(prefill_logits[r, :n]), full[:n], rtol=1e-5, atol=1e-5)
        for i in range(4):
            np.testing.assert_allclose(np.asarray(step_logits[i][r]), full[n + i], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cache_dtype", ["float32", "bfloat16"])
def test_fresh_prefill_reads_only_the_prompt_and_fills_the_same_cache(params, cache_dtype):
    """fresh=True (the sampler's prefill) attends to the new tokens instead of all cache slots: for ragged,
    right-padded prompts the logits at every real position and the whole cache (keys stored keys-last) are those
    of the general path, also when the cache holds K/V in a lower precision than the compute (bf16 under fp32: the
    fresh path must attend to the K/V as the cache rounds them)."""
    b, p, slots = len(PROMPTS), 8, 16
    toks = np.zeros((b, p), np.int32)
    for i, x in enumerate(PROMPTS):
        toks[i, :len(x)] = x
    pos = np.where(toks > 0, np.arange(p)[None], -1)
    assert (pos == -1).any()  # padding keys must stay invisible in both paths

    def run(fresh):
        fn = jax.jit(lambda prm, c: forward_cached(prm, jnp.asarray(toks), CFG, c, positions=jnp.asarray(pos),
                                                   write_index=jnp.zeros(b, jnp.int32), fresh=fresh))
        return fn(params, init_cache(CFG, b, slots, dtype=cache_dtype))

    (want, want_cache), (got, got_cache) = run(False), run(True)
    real = pos >= 0
    np.testing.assert_allclose(np.asarray(got)[real], np.asarray(want)[real], rtol=1e-5, atol=1e-5)
    assert got_cache["layers"][0]["k"].shape == (b, CFG.num_kv_heads, CFG.head_dim, slots)
    for g, w in zip(jax.tree.leaves(got_cache), jax.tree.leaves(want_cache)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)


def test_half_step_buckets_fit_the_padded_prompt(params, sampler):
    """33 prompt tokens + 2 new: prompt and cache both bucket to 48 slots (a 1.5x power of two, not 64), and the
    tokens are the full forward's greedy ones."""
    prompt, sp = list(range(40, 73)), SamplingParams(max_new_tokens=2, temperature=0.0, ignore_eos=True)
    batch = DecodeBatch(sampler)
    batch.admit(sampler.rows_for([prompt], sp), [(None, 0)])
    assert batch.state["cache"]["slot_positions"].shape[1] == 48
    ((c,),) = sampler.generate([prompt], sp)
    seq = list(prompt)
    for _ in range(2):
        seq.append(int(np.argmax(_padded_logits(params, seq, width=64)[len(seq) - 1])))
    assert c.token_ids == seq[len(prompt):]


def test_first_argmax_is_argmax_with_ties_to_the_first():
    ninf = -np.inf
    logits = jnp.asarray([[1, 3, 3, 0], [ninf, ninf, 2, 2], [5, 5, 5, 5], [np.nan, 1, 2, 0]], jnp.float32)
    assert first_argmax(logits).tolist()[:3] == [1, 2, 0]
    assert 0 <= int(first_argmax(logits)[3]) < 4  # a NaN row still gives a vocabulary id
    x = jax.random.normal(jax.random.key(3), (16, 300))
    assert first_argmax(x).tolist() == jnp.argmax(x, axis=-1).tolist()


def test_greedy_equals_stepwise_argmax_of_forward(params, sampler):
    got = sampler.generate(PROMPTS, SamplingParams(max_new_tokens=NEW, temperature=0.0, ignore_eos=True))
    for prompt, (c,) in zip(PROMPTS, got):
        assert c.token_ids == _reference_greedy(params, prompt, NEW)
        assert c.finish_reason == "length" and c.prompt_tokens == len(prompt)


def test_logprobs_are_the_models_log_softmax_at_every_step(params, sampler):
    sp = SamplingParams(max_new_tokens=NEW, temperature=1.0, seed=5, ignore_eos=True, logprobs=3)
    got = sampler.generate(PROMPTS, sp)
    for prompt, (c,) in zip(PROMPTS, got):
        seq = prompt + c.token_ids
        logp = np.asarray(jax.nn.log_softmax(_padded_logits(params, seq), axis=-1))
        for j, tok in enumerate(c.token_ids):
            at = len(prompt) - 1 + j
            assert c.logprobs[j] == pytest.approx(logp[at, tok], abs=1e-4)
            ids, vals = zip(*c.top_logprobs[j])
            np.testing.assert_array_equal(ids, np.argsort(-logp[at])[:3])
            np.testing.assert_allclose(vals, np.sort(logp[at])[::-1][:3], atol=1e-4)


def test_seeded_sampling_is_reproducible_and_independent_of_batch_mates(sampler):
    sp = SamplingParams(max_new_tokens=NEW, temperature=1.0, seed=123, n=2, ignore_eos=True)
    a = sampler.generate(PROMPTS, sp)
    b = sampler.generate(PROMPTS[:1], sp)  # alone, in a smaller batch bucket
    assert [c.token_ids for c in a[0]] == [c.token_ids for c in b[0]]
    assert a[0][0].token_ids != a[0][1].token_ids  # the n samples differ
    c = sampler.generate(PROMPTS[:1], sp.replace(seed=124))
    assert c[0][0].token_ids != a[0][0].token_ids
    big = sampler.generate(PROMPTS[:1], sp.replace(seed=123 + 2 ** 40))  # high seed bits are not dropped
    assert big[0][0].token_ids != a[0][0].token_ids


def test_row_keys_are_fold_in_of_the_64_bit_seed_and_need_no_eager_jax(monkeypatch):
    """Each row's key is fold_in(key data (seed >> 32, seed & 0xFFFFFFFF), sample index), as the per-row eager
    computation gave; the host part (`_row_arrays`) runs no JAX op (one eager dispatch cost ~0.2 ms a row)."""
    from nemotron_jax.inference import sampler as S

    seeds = [0, 7, 123 + 2 ** 40, -5, 2 ** 63 - 1, -(2 ** 63)]
    rows = [S.Row([1, 2], SamplingParams(seed=sd), 0, j) for sd in seeds for j in (0, 1, 5)]

    def no_eager(*a, **k):
        raise AssertionError("_row_arrays dispatched a JAX op")

    with monkeypatch.context() as m:
        m.setattr(jax.random, "fold_in", no_eager)
        m.setattr(jax.random, "wrap_key_data", no_eager)
        arrays = S._row_arrays(rows, 32, CFG.eos_id)
    got = np.asarray(jax.jit(S._row_keys)(arrays["seeds"], arrays["sample_index"]))
    for i, r in enumerate(rows):
        sd = r.params.seed & (2 ** 64 - 1)
        base = jax.random.wrap_key_data(np.array([sd >> 32, sd & 0xFFFFFFFF], np.uint32))
        want = np.asarray(jax.random.key_data(jax.random.fold_in(base, r.sample_index)))
        np.testing.assert_array_equal(got[i], want)


def _np_allowed(logits, temperature, top_k, top_p):
    """Independent numpy nucleus/top-k: the allowed token set, and its renormalised probabilities."""
    z = logits / temperature
    order = np.argsort(-z, kind="stable")
    keep = order[:top_k] if top_k else order
    p = np.exp(z[keep] - z[keep].max())
    p /= p.sum()
    mass, out = 0.0, []
    for tok, pi in zip(keep, p):
        if mass >= top_p:
            break
        out.append(tok)
        mass += pi
    q = np.exp(z[out] - z[out].max())
    return set(int(t) for t in out), dict(zip(map(int, out), q / q.sum()))


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 0.7), (1.0, 0, 0.8001), (1.0, 3, 1.0),
                                                     (0.5, 0, 0.9), (2.0, 4, 0.95)])
def test_top_k_top_p_restrict_support(temperature, top_k, top_p):
    probs = np.array([0.05, 0.5, 0.02, 0.3, 0.1, 0.03])  # sorted: 1 (.5) 3 (.3) 4 (.1) 0 (.05) 5 (.03) 2 (.02)
    logits = np.log(probs).astype(np.float32)
    allowed, expected_p = _np_allowed(logits, temperature, top_k, top_p)
    filtered, order = filter_logits(jnp.asarray(logits)[None], jnp.asarray([temperature]), jnp.asarray([top_k]),
                                    jnp.asarray([top_p], jnp.float32))
    kept = {int(t) for t, v in zip(np.asarray(order[0]), np.asarray(filtered[0])) if np.isfinite(v)}
    assert kept == allowed
    n = 4000
    keys = jax.random.split(jax.random.key(0), n)
    draws = jax.jit(jax.vmap(lambda k: sample_tokens(jnp.asarray(logits)[None], k[None], jnp.asarray([temperature]),
                                                     jnp.asarray([top_k]), jnp.asarray([top_p], jnp.float32))[0]))(
        jax.random.key_data(keys))
    draws = np.asarray(draws)
    assert set(np.unique(draws).tolist()) <= allowed
    for tok, p in expected_p.items():
        assert abs(np.mean(draws == tok) - p) < 0.03


def test_top_p_hand_computed_edges():
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
    one = lambda p, k=0: np.isfinite(np.asarray(filter_logits(logits, jnp.ones(1), jnp.asarray([k]),
                                                              jnp.asarray([p]))[0][0])).sum()
    assert one(0.5) == 1  # the top token alone already has mass 0.5
    assert one(0.51) == 2
    assert one(0.8) == 2
    assert one(0.81) == 3
    assert one(1.0) == 4
    assert one(1e-6) == 1  # the most likely token always survives
    assert one(1.0, k=2) == 2


def test_temperature_zero_rows_stay_greedy_in_a_sampled_batch(params, sampler):
    ps = [SamplingParams(max_new_tokens=NEW, temperature=0.0, ignore_eos=True),
          SamplingParams(max_new_tokens=NEW, temperature=1.0, seed=1, ignore_eos=True),
          SamplingParams(max_new_tokens=3, temperature=0.0, ignore_eos=True)]
    got = sampler.generate(PROMPTS, ps)
    assert got[0][0].token_ids == _reference_greedy(params, PROMPTS[0], NEW)
    assert got[2][0].token_ids == _reference_greedy(params, PROMPTS[2], 3)
    assert len(got[2][0].token_ids) == 3 and got[2][0].finish_reason == "length"


def test_stop_token_ids_end_a_row_and_count_as_stop(params, sampler):
    ref = _reference_greedy(params, PROMPTS[1], NEW)
    stop_tok = ref[3]
    got = sampler.generate([PROMPTS[1]], SamplingParams(max_new_tokens=NEW, temperature=0.0, ignore_eos=True,
                                                        stop_token_ids=(stop_tok,)))[0][0]
    first = ref.index(stop_tok)
    assert got.token_ids == ref[:first + 1] and got.finish_reason == "stop"
    assert got.text == ByteTokenizer(CFG.vocab_size).decode(ref[:first])  # the stop token is not text


def test_stop_strings_cut_text_and_tokens(params, sampler):
    tok = ByteTokenizer(CFG.vocab_size)
    ref = _reference_greedy(params, PROMPTS[2], NEW)
    full = tok.decode(ref)
    printable = [i for i, ch in enumerate(full) if ch != "\ufffd"]
    if len(printable) < 2:
        pytest.skip("this random model's greedy text has too few single-byte characters")
    at = printable[1]
    stop = full[at]
    got = sampler.generate([PROMPTS[2]], SamplingParams(max_new_tokens=NEW, temperature=0.0, ignore_eos=True,
                                                        stop=(stop,)))[0][0]
    cut = full.find(stop)
    assert got.text == full[:cut] and got.finish_reason == "stop"
    assert stop in tok.decode(got.token_ids) and stop not in tok.decode(got.token_ids[:-1])


def test_eos_stops_unless_ignored(params):
    """Rig the model so eos always wins (final norm outputs a constant, the output matrix reads only eos)."""
    kernel = np.zeros_like(np.asarray(params["lm_head"]["kernel"]))
    kernel[:, CFG.eos_id] = 1.0
    d = CFG.d_model
    rigged = {**params, "lm_head": {"kernel": jnp.asarray(kernel)},
              "final_norm": {"scale": -jnp.ones(d), "bias": jnp.ones(d)}}
    s = Sampler(rigged, CFG, tokenizer=ByteTokenizer(CFG.vocab_size), chunk=4)
    out = s.generate(PROMPTS, SamplingParams(max_new_tokens=NEW, temperature=0.0))
    assert all(c.token_ids == [CFG.eos_id] and c.finish_reason == "stop" and c.text == "" for (c,) in out)
    ignored = s.generate(PROMPTS, SamplingParams(max_new_tokens=NEW, temperature=0.0, ignore_eos=True))
    assert all(c.token_ids == [CFG.eos_id] * NEW and c.finish_reason == "length" for (c,) in ignored)


def test_context_overflow_and_bad_params_fail_clearly(sampler):
    with pytest.raises(ValueError, match="context of 64"):
        sampler.generate([[1] * 60], SamplingParams(max_new_tokens=8))
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1.0)
    with pytest.raises(ValueError, match="tokenizer"):
        Sampler(sampler.params, CFG).generate([[1, 2]], SamplingParams(stop=("x",)))


def test_buckets_and_find_stop():
    assert [bucket(n, 1) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]
    assert bucket(3, 16) == 16 and bucket(40, 16, 48) == 48 and bucket(60, 16, 48) == 60
    assert [bucket(n, 16, halves=True) for n in (3, 17, 24, 25, 33, 48, 49, 192, 193)] == [16, 24, 24, 32, 48, 48,
                                                                                          64, 192, 256]
    assert bucket(100, 16, 120, halves=True) == 120 and bucket(130, 16, 120, halves=True) == 130
    assert find_stop("abcXYdefX", ["X", "de"]) == 3 and find_stop("abc", ["z"]) == -1


def test_sharded_tensor_and_data_equals_single_device(params):
    """data=2 x tensor=2 on fake CPU devices: same greedy tokens and log-probs as one device; the cache is sharded."""
    from nemotron_jax.config import ParallelConfig
    from nemotron_jax.parallel.mesh import make_mesh

    pcfg = ParallelConfig(data=2, tensor=2)
    mesh = make_mesh(pcfg, jax.devices()[:4])
    sharded = Sampler(params, CFG, chunk=4, mesh=mesh, parallel=pcfg)
    assert sharded.params["layers"][0]["attn"]["wk"].sharding.spec[1] == "tensor"  # [D, K, H]: kv heads split
    sp = SamplingParams(max_new_tokens=NEW, temperature=0.0, ignore_eos=True, logprobs=0)
    got = sharded.generate(PROMPTS, sp)
    want = Sampler(params, CFG, chunk=4).generate(PROMPTS, sp)
    for (g,), (w,) in zip(got, want):
        assert g.token_ids == w.token_ids
        np.testing.assert_allclose(g.logprobs, w.logprobs, atol=1e-5)
    batch = DecodeBatch(sharded)
    batch.admit(sharded.rows_for(PROMPTS[:1], sp), [(None, 0)])
    spec = batch.state["cache"]["layers"][0]["k"].sharding.spec  # keys [B, K, H, S]
    assert "data" in np.atleast_1d(spec[0]) and spec[1] == "tensor"
    with pytest.raises(ValueError, match="pipeline"):
        Sampler(params, CFG, mesh=make_mesh(ParallelConfig(data=2, pipeline=2), jax.devices()[:4]))


def test_a_rows_draw_does_not_depend_on_batch_mates_filters(sampler):
    """A plain-temperature row gives the same tokens whether or not another row in its batch uses top-p."""
    plain = SamplingParams(max_new_tokens=NEW, temperature=1.0, seed=9, ignore_eos=True)
    alone = sampler.generate(PROMPTS[:2], [plain, plain])
    mixed = sampler.generate(PROMPTS[:2], [plain, plain.replace(top_p=0.5, seed=10)])
    assert alone[0][0].token_ids == mixed[0][0].token_ids


def test_streamed_deltas_add_up_and_never_leak_a_stop_string(params, sampler):
    """Chunked decoding with on_deltas: the pieces concatenate to the final text; no piece shows the stop string."""
    tok = ByteTokenizer(CFG.vocab_size)
    ref = tok.decode(_reference_greedy(params, PROMPTS[0], NEW))
    visible = [ch for ch in ref if ch != "\ufffd"]
    stop = visible[len(visible) // 2] if visible else "\x00"
    s = sampler
    pieces, finished = [], []

    def collect(deltas):
        for d in deltas:
            pieces.append(d.text)
            finished.append(d.finished)

    sp = SamplingParams(max_new_tokens=NEW, temperature=0.0, ignore_eos=True, stop=(stop,))
    (c,) = s.run_rows([s.rows_for([PROMPTS[0]], sp)[0]], on_deltas=collect)
    assert "".join(pieces) == c.text and stop not in "".join(pieces)
    assert finished[-1] == c.finish_reason and all(f is None for f in finished[:-1])


def test_rows_finishing_at_different_times_shrink_the_batch_and_match_solo_runs(params, sampler):
    """Eight rows with budgets 1..22: the running batch shrinks (8 -> 2 rows) as they finish; every row's
    tokens equal its solo run, and the longest equals step-by-step argmax of the full forward."""
    prompts = [[3 + i, 40 + i, 77][: 1 + i % 3] for i in range(8)]
    sps = [SamplingParams(max_new_tokens=1 + 3 * i, temperature=0.0 if i % 2 else 0.9, seed=i, ignore_eos=True)
           for i in range(8)]
    sizes = []
    batch = DecodeBatch(sampler)
    batch.admit([r for p, sp in zip(prompts, sps) for r in sampler.rows_for([p], sp)], [(None, i) for i in range(8)])
    got = [None] * 8
    while True:
        _, finished = batch.sync()
        for (_, i), c in finished:
            got[i] = c.token_ids
        if not batch.active:
            break
        sizes.append(batch.capacity)
        batch.decode()
    assert sizes[0] == 8 and sizes[-1] == 2  # shrunk once at most a quarter of the rows were live
    for p, sp, g in zip(prompts, sps, got):
        assert g == sampler.generate([p], sp)[0][0].token_ids and len(g) == sp.max_new_tokens
    assert got[7] == _reference_greedy(params, prompts[7], 22)


def test_decode_updates_the_kv_cache_in_place_and_never_copies_weights(params, sampler):
    """The compiled decode chunk holds no copy of a KV-cache buffer or of any weight matrix (in any layout):
    the cache is donated and updated in place, the weights are read where they are."""
    import re

    from nemotron_jax.inference.sampler import decode_chunk

    batch = DecodeBatch(sampler)
    batch.admit(sampler.rows_for(PROMPTS, SamplingParams(max_new_tokens=NEW)), [(None, i) for i in range(3)])
    hlo = decode_chunk.lower(sampler.params, CFG, batch.state, 4, 0).compile().as_text()
    big = {tuple(sorted(a.shape)) for a in jax.tree.leaves(sampler.params) if a.ndim >= 2}
    big |= {tuple(sorted(c["k"].shape)) for c in batch.state["cache"]["layers"]}
    copied = [tuple(sorted(int(d) for d in m.group(1).split(",") if d))
              for m in re.finditer(r"= f32\[([\d,]*)\]\S* copy\(", hlo)]
    assert not big & set(copied), f"copies of weight / cache shapes: {big & set(copied)}"


def test_chat_reply_excludes_the_template_newline():
    """The template closes a reply with "\\n<extra_id_1>": a chat reply must not keep that newline, or a reply put
    back into a conversation (SDG pairs, the next turn) renders with two and trains the model to emit both."""
    from nemotron_jax.inference.api import CHAT_STOP_STRINGS
    from nemotron_jax.inference.byte_tokenizer import ByteTokenizer
    from nemotron_jax.inference.sampler import Row, _RowTracker

    tok = ByteTokenizer()
    turn = tok.piece_to_id("<extra_id_1>")
    params = SamplingParams(stop=CHAT_STOP_STRINGS, stop_token_ids=(turn,))
    for reply in ("14", "a\nb", "x\n\n"):
        tracker = _RowTracker(Row([1], params), tok, eos_id=3)
        ids = tok.encode(reply + "\n")
        tracker.update(ids, device_done=False)
        streamed = tracker.delta(0).text  # a trailing newline is held back: it may be the template's
        assert streamed == reply.rstrip("\n") or reply.startswith(streamed)
        tracker.update(ids + [turn], device_done=True)
        assert tracker.text == reply and tracker.finish == "stop"
        assert streamed + tracker.delta(0).text == reply
