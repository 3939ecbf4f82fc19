"""Continuous batching: a request that joins a running batch gets exactly what it would get alone."""

import threading

import jax
import pytest

from nemotron_jax import config as C
from nemotron_jax.inference.byte_tokenizer import ByteTokenizer
from nemotron_jax.inference.engine import BatchingEngine
from nemotron_jax.inference.sampler import Row, Sampler, SamplingParams
from nemotron_jax.model import init_params

CFG = C.toy_tiny(vocab_size=300, max_seq_len=64)


@pytest.fixture(scope="module")
def sampler():
    return Sampler(init_params(CFG, jax.random.key(0)), CFG, tokenizer=ByteTokenizer(CFG.vocab_size), chunk=2)


def _alone(sampler, prompt, sp):
    return sampler.run_rows([Row(prompt, sp, 0, j) for j in range(sp.n)])


def test_a_request_joining_mid_generation_gets_the_same_tokens_as_alone(sampler):
    """The second request arrives after the first has decoded a chunk; it needs a longer cache, a bigger token
    budget and top log-probs (so the running batch grows), and both still match their solo runs exactly."""
    first_sp = SamplingParams(max_new_tokens=20, temperature=0.0, ignore_eos=True)
    late_sp = SamplingParams(max_new_tokens=40, temperature=1.0, seed=7, n=2, ignore_eos=True, logprobs=2)
    first_prompt, late_prompt = [5, 17, 99], list(range(30, 50))
    engine = BatchingEngine(sampler, max_rows=8, max_wait_ms=1.0)
    try:
        started = threading.Event()
        first = engine.submit([Row(first_prompt, first_sp)], on_deltas=lambda ds: started.set())
        assert started.wait(60)
        late = engine.submit([Row(late_prompt, late_sp, 0, j) for j in range(2)])
        got_first, got_late = first.result(60), late.result(60)
        assert engine.stats.batches == 2 and engine.stats.max_rows_in_batch == 3  # they shared decode chunks
    finally:
        engine.close()
    assert got_first[0].token_ids == _alone(sampler, first_prompt, first_sp)[0].token_ids
    want = _alone(sampler, late_prompt, late_sp)
    for g, w in zip(got_late, want):
        assert g.token_ids == w.token_ids and g.finish_reason == w.finish_reason == "length"
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-5)
        assert [i for i, _ in g.top_logprobs[5]] == [i for i, _ in w.top_logprobs[5]]


def test_requests_beyond_max_rows_wait_for_free_rows_and_stay_correct(sampler):
    """max_rows=2: four one-row requests run two at a time; each result equals its solo run."""
    sps = [SamplingParams(max_new_tokens=3 + 4 * i, temperature=0.0, ignore_eos=True) for i in range(4)]
    prompts = [[10 + i, 20 + i, 30 + i][: 1 + i % 3] for i in range(4)]
    engine = BatchingEngine(sampler, max_rows=2, max_wait_ms=20.0)
    try:
        futures = [engine.submit([Row(p, sp)]) for p, sp in zip(prompts, sps)]
        got = [f.result(60)[0].token_ids for f in futures]
        assert engine.stats.max_rows_in_batch == 2
    finally:
        engine.close()
    assert got == [_alone(sampler, p, sp)[0].token_ids for p, sp in zip(prompts, sps)]


def test_a_failing_request_does_not_take_the_engine_down(sampler):
    engine = BatchingEngine(sampler, max_rows=4, max_wait_ms=1.0)
    try:
        bad = engine.submit([Row(["not a token"], SamplingParams(max_new_tokens=2))])  # fails in admission
        with pytest.raises(Exception):
            bad.result(60)
        ok = engine.generate([Row([1, 2], SamplingParams(max_new_tokens=2, temperature=0.0))])
        assert len(ok[0].token_ids) == 2
    finally:
        engine.close()


def test_the_next_chunk_is_dispatched_before_the_last_chunks_deltas_are_delivered(sampler):
    """The device decodes while the engine thread streams deltas and answers finished requests: every delivery
    of a running request comes after the dispatch of the chunk that follows the one it reports."""
    engine = BatchingEngine(sampler, max_rows=4, max_wait_ms=1.0)
    decodes, seen = [0], []
    orig = engine._batch.decode

    def counting_decode():
        decodes[0] += 1
        orig()

    engine._batch.decode = counting_decode
    try:
        sp = SamplingParams(max_new_tokens=7, temperature=0.0, ignore_eos=True)  # token 0 + 3 chunks of 2
        got = engine.submit([Row([5, 6, 7], sp)], on_deltas=lambda ds: seen.append((decodes[0], ds[0].finished)))
        got.result(60)
    finally:
        engine.close()
    assert seen == [(1, None), (2, None), (3, None), (3, "length")]
    assert got.result()[0].token_ids == _alone(sampler, [5, 6, 7], sp)[0].token_ids


def test_finished_requests_are_answered_even_when_the_next_dispatch_fails(sampler):
    """A request whose rows finished in the last chunk gets its result; the ones still running get the error."""
    engine = BatchingEngine(sampler, max_rows=4, max_wait_ms=50.0)
    orig, calls = engine._batch.decode, [0]

    def failing_second_decode():
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("device lost")
        orig()

    engine._batch.decode = failing_second_decode
    try:
        short = engine.submit([Row([5, 6], SamplingParams(max_new_tokens=3, temperature=0.0, ignore_eos=True))])
        long = engine.submit([Row([7, 8], SamplingParams(max_new_tokens=9, temperature=0.0, ignore_eos=True))])
        assert len(short.result(60)[0].token_ids) == 3
        with pytest.raises(RuntimeError, match="device lost"):
            long.result(60)
    finally:
        engine.close()
