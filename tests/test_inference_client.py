"""The in-process client: server semantics without HTTP, the SDG backend adapter, and reward-model scoring."""

from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemotron_jax import config as C
from nemotron_jax.data.chat import encode_reward_input
from nemotron_jax.inference.byte_tokenizer import ByteTokenizer
from nemotron_jax.inference.client import APIError, InferenceClient
from nemotron_jax.inference.sampler import Row, Sampler, SamplingParams
from nemotron_jax.model import forward_hidden, init_params

CFG = C.toy_tiny(vocab_size=300, max_seq_len=64)
TOK = ByteTokenizer(CFG.vocab_size)


@pytest.fixture(scope="module")
def params():
    return init_params(CFG, jax.random.key(0))


@pytest.fixture(scope="module")
def client(params):
    c = InferenceClient.from_params(params, CFG, TOK, model_name="toy", max_wait_ms=30.0, chunk=4)
    yield c
    c.close()


def test_completions_match_the_sampler(client, params):
    res = client.completions(prompt=["ab", "cde"], max_tokens=5, n=2, seed=11, temperature=1.0)
    s = Sampler(params, CFG, tokenizer=TOK, chunk=4)
    sp = SamplingParams(max_new_tokens=5, n=2, seed=11, temperature=1.0)
    want = s.run_rows([Row(TOK.encode(p, bos=True), sp, i, j) for i, p in enumerate(["ab", "cde"]) for j in range(2)])
    assert [c["index"] for c in res["choices"]] == [0, 1, 2, 3]
    assert [c["text"] for c in res["choices"]] == [w.text for w in want]
    assert res["usage"]["prompt_tokens"] == 7 and res["object"] == "text_completion"  # 2 + 3, each after BOS


def test_bad_input_raises_the_servers_error(client):
    with pytest.raises(APIError) as e:
        client.completions(prompt="x", temperature=5.0)
    assert e.value.status == 400 and e.value.param == "temperature"
    with pytest.raises(APIError) as e:
        client.chat_completions(model="other", messages=[{"role": "user", "content": "x"}])
    assert e.value.status == 404


def test_sdg_backend_adapter_and_batching(client):
    from nemotron_jax.sdg.clients import ClientError, ModelClient, Sampling

    mc = ModelClient(client.as_sdg_backend())
    sampling = Sampling(n=2, temperature=1.0, max_tokens=4, seed=5)
    direct = client.generate(["hello", "world"], sampling, chat=False)
    assert mc.complete("hello", sampling) == direct[0] and len(direct[1]) == 2
    chat = mc.chat([{"role": "user", "content": "hi"}], Sampling(max_tokens=4))
    assert chat == client.generate([[{"role": "user", "content": "hi"}]], Sampling(max_tokens=4), chat=True)[0]
    with pytest.raises(ClientError):
        mc.reward([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
    before = client.service.engine.stats.batches
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: mc.complete(f"q{i}", Sampling(max_tokens=3, seed=i, temperature=1.0)),
                             range(8)))
    assert all(len(o) == 1 for o in outs)
    assert client.service.engine.stats.batches - before < 8


def test_reward_model_scores_match_an_independent_head_computation():
    from nemotron_jax.model.heads import init_reward_params

    rparams = init_reward_params(CFG, jax.random.key(3))
    weights = np.array([0.3, 0.74, 0.46, 0.47, -0.33])  # SPEC §3, helpfulness..verbosity
    convs = [[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
             [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue, or red."}]]
    with InferenceClient.from_params(rparams, CFG, TOK, model_name="rm") as rm:
        one = rm.reward(convs[0])
        both = rm.score(convs)
        with pytest.raises(APIError):
            rm.completions(prompt="x")
    trunk = {k: rparams[k] for k in ("embed", "layers", "final_norm")}
    hidden = jax.jit(lambda t: forward_hidden(trunk, t, CFG))
    for conv, (reward, attrs) in zip(convs, both):
        ids = encode_reward_input(TOK, conv[:-1], conv[-1]["content"])
        row = np.zeros((1, 64), np.int32)
        row[0, :len(ids)] = ids  # causal: right padding leaves the last real token's state alone
        h = np.asarray(hidden(jnp.asarray(row))[0, len(ids) - 1])
        want = h @ np.asarray(rparams["reward_head"]["kernel"]) + np.asarray(rparams["reward_head"]["bias"])
        assert list(attrs) == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
        np.testing.assert_allclose(list(attrs.values()), want, rtol=1e-4, atol=1e-5)
        assert reward == pytest.approx(float(want @ weights), abs=1e-4)
    assert one["reward"] == pytest.approx(both[0][0]) and one["attributes"] == pytest.approx(both[0][1])
