"""The OpenAI-compatible server over loopback: the official `openai` client, raw HTTP errors, concurrency, SIGTERM."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import http.client
from concurrent.futures import ThreadPoolExecutor

import jax
import openai
import pytest

from nemotron_jax import config as C
from nemotron_jax.inference.byte_tokenizer import ByteTokenizer
from nemotron_jax.inference.sampler import Row, Sampler, SamplingParams
from nemotron_jax.inference.server import build_service, make_server
from nemotron_jax.model import init_params

CFG = C.toy_tiny(vocab_size=300, max_seq_len=64)
TOK = ByteTokenizer(CFG.vocab_size)
NAME = "toy"


@pytest.fixture(scope="module")
def params():
    return init_params(CFG, jax.random.key(0))


@pytest.fixture(scope="module")
def server(params):
    # A generous batching window so concurrent test clients reliably land in the same batch.
    service = build_service(CFG, params, TOK, NAME, max_rows=32, max_wait_ms=50.0, chunk=4)
    srv = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    service.engine.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="unused",
                         max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def reference(params):
    """Direct sampler calls (no server): what each request must return."""
    s = Sampler(params, CFG, tokenizer=TOK, chunk=4)
    return lambda prompt, sp: s.run_rows([Row(TOK.encode(prompt, bos=True), sp, 0, j) for j in range(sp.n)])


def _raw(server, method, path, body=None, raw=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=120)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read() or b"null")
    conn.close()
    return out


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list().data] == [NAME]
    x = jax.numpy.ones(7).block_until_ready()
    status, health = _raw(server, "GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["model"] == NAME
    # XLA compilations in this process so far (benchmarks/serve_load.py warms up until none happen): a program
    # this process has never seen adds exactly one
    jax.jit(lambda x: x * 1.2345 + 6.789)(x).block_until_ready()
    assert _raw(server, "GET", "/health")[1]["compiles"] == health["compiles"] + 1


def test_completions_n_logprobs_usage(client, reference):
    r = client.completions.create(model=NAME, prompt="Hello", max_tokens=6, n=2, seed=7, temperature=0.8,
                                  logprobs=2)
    want = reference("Hello", SamplingParams(max_new_tokens=6, n=2, seed=7, temperature=0.8, logprobs=2))
    assert [c.text for c in r.choices] == [w.text for w in want]
    assert [c.finish_reason for c in r.choices] == [w.finish_reason for w in want]
    assert r.choices[0].logprobs.token_logprobs == pytest.approx(want[0].logprobs)
    assert 1 <= len(r.choices[0].logprobs.top_logprobs[0]) <= 2  # a dict keyed by text: equal texts merge
    assert r.usage.prompt_tokens == 6 and r.usage.completion_tokens == sum(len(w.token_ids) for w in want)
    again = client.completions.create(model=NAME, prompt="Hello", max_tokens=1)
    assert re.fullmatch(r"cmpl-[0-9a-f]{24}", r.id) and re.fullmatch(r"cmpl-[0-9a-f]{24}", again.id)
    assert again.id != r.id


def test_text_prompts_start_with_bos_unless_add_special_tokens_is_false(client, params):
    """As every training document starts with BOS; vLLM's `add_special_tokens: false` leaves it out."""
    kw = dict(model=NAME, prompt="Hello", max_tokens=6, temperature=0.0)
    with_bos = client.completions.create(**kw)
    bare = client.completions.create(**kw, extra_body={"add_special_tokens": False})
    s = Sampler(params, CFG, tokenizer=TOK, chunk=4)
    sp = SamplingParams(max_new_tokens=6, temperature=0.0)
    want_bos, want_bare = s.run_rows([Row([TOK.bos_id] + TOK.encode("Hello"), sp), Row(TOK.encode("Hello"), sp)])
    assert with_bos.choices[0].text == want_bos.text and bare.choices[0].text == want_bare.text
    assert want_bos.token_ids != want_bare.token_ids  # BOS changes the continuation here, so the test can fail
    assert with_bos.usage.prompt_tokens == 6 and bare.usage.prompt_tokens == 5


def test_chat_completion_uses_the_nemotron_template(client, params):
    from nemotron_jax.data.chat import encode_prompt

    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    r = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=6, temperature=0.0)
    s = Sampler(params, CFG, tokenizer=TOK, chunk=4)
    ids = encode_prompt(TOK, msgs)
    sp = SamplingParams(max_new_tokens=6, temperature=0.0, stop=("<extra_id_1>", "<|endoftext|>"),
                        stop_token_ids=(TOK.piece_to_id("<extra_id_1>"),))
    want = s.run_rows([Row(ids, sp)])[0]
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content == want.text
    assert r.usage.prompt_tokens == len(ids)


def test_streaming_matches_non_streaming(client):
    kw = dict(model=NAME, prompt="Stream me", max_tokens=10, n=2, seed=3, temperature=1.0)
    full = client.completions.create(**kw)
    texts, finish = ["", ""], [None, None]
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    for ch in chunks:
        for c in ch.choices:
            texts[c.index] += c.text
            finish[c.index] = c.finish_reason or finish[c.index]
    assert texts == [c.text for c in full.choices] and finish == [c.finish_reason for c in full.choices]
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    chat = list(client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "x"}],
                                               max_tokens=5, seed=1, stream=True))
    assert chat[0].choices[0].delta.role == "assistant" and chat[-1].choices[0].finish_reason in ("stop", "length")


BAD = [
    ("invalid json", "/v1/completions", None, b"{not json", 400, "not valid JSON"),
    ("unknown model", "/v1/completions", {"model": "gpt-9", "prompt": "x"}, None, 404, "does not exist"),
    ("prompt too long", "/v1/completions", {"model": NAME, "prompt": "x" * 70, "max_tokens": 4}, None, 400,
     "context of 64"),
    ("max_tokens past context", "/v1/completions", {"model": NAME, "prompt": "hi", "max_tokens": 100}, None, 400,
     "context"),
    ("negative temperature", "/v1/completions", {"model": NAME, "prompt": "x", "temperature": -1}, None, 400,
     "temperature"),
    ("top_p zero", "/v1/completions", {"model": NAME, "prompt": "x", "top_p": 0}, None, 400, "top_p"),
    ("n zero", "/v1/completions", {"model": NAME, "prompt": "x", "n": 0}, None, 400, "'n'"),
    ("max_tokens string", "/v1/completions", {"model": NAME, "prompt": "x", "max_tokens": "8"}, None, 400,
     "max_tokens"),
    ("logprobs too many", "/v1/completions", {"model": NAME, "prompt": "x", "logprobs": 9}, None, 400, "logprobs"),
    ("add_special_tokens not a bool", "/v1/completions", {"model": NAME, "prompt": "x", "add_special_tokens": 1},
     None, 400, "add_special_tokens"),
    ("too many stops", "/v1/completions", {"model": NAME, "prompt": "x", "stop": list("abcde")}, None, 400, "stop"),
    ("missing prompt", "/v1/completions", {"model": NAME}, None, 400, "prompt"),
    ("token id out of vocab", "/v1/completions", {"model": NAME, "prompt": [1, 99999]}, None, 400, "vocabulary"),
    ("bad messages", "/v1/chat/completions", {"model": NAME, "messages": [{"role": "robot", "content": "x"}]},
     None, 400, "role"),
    ("no messages", "/v1/chat/completions", {"model": NAME}, None, 400, "messages"),
    ("body not an object", "/v1/chat/completions", [1, 2], None, 400, "JSON object"),
    ("reward on a policy", "/v1/reward", {"model": NAME, "messages": [{"role": "user", "content": "x"},
                                                                       {"role": "assistant", "content": "y"}]},
     None, 400, "reward model"),
    ("unknown route", "/v1/embeddings", {"model": NAME}, None, 404, "no route"),
]


@pytest.mark.parametrize("name,path,body,raw,status,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_openai_error(server, name, path, body, raw, status, msg):
    got, out = _raw(server, "POST", path, body=body, raw=raw)
    assert got == status, out
    assert set(out["error"]) >= {"message", "type", "param", "code"} and msg in out["error"]["message"]


def test_server_keeps_serving_after_errors(server, client):
    for _ in range(3):
        _raw(server, "POST", "/v1/completions", raw=b"\x00garbage")
    assert client.completions.create(model=NAME, prompt="ok", max_tokens=2).choices[0].finish_reason


def test_concurrent_clients_are_batched_and_correct(server, client, reference):
    prompts = [f"p{i}" for i in range(12)]
    sp = lambda i: SamplingParams(max_new_tokens=6, seed=100 + i, temperature=1.0)
    before = _raw(server, "GET", "/health")[1]

    def call(i):
        return client.completions.create(model=NAME, prompt=prompts[i], max_tokens=6, seed=100 + i,
                                         temperature=1.0).choices[0].text

    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(call, range(12)))
    assert got == [reference(p, sp(i))[0].text for i, p in enumerate(prompts)]
    after = _raw(server, "GET", "/health")[1]
    assert after["batches"] - before["batches"] < 12  # requests shared device batches
    assert after["max_rows_in_batch"] > 1


def test_connection_threads_are_reused_grow_under_load_and_retire_when_idle():
    """The server's connection threads: a connection after another reuses the idle thread, simultaneous ones each
    get a thread (none waits for another to finish), and idle threads exit after idle_s while new work still runs."""
    from nemotron_jax.inference.server import _ConnectionThreads

    pool = _ConnectionThreads(idle_s=0.3)
    seen, done = [], threading.Semaphore(0)

    def job(gate=None):
        seen.append(threading.current_thread())  # the object: a finished thread's ident may be reused
        if gate is not None:
            assert gate.wait(10)
        done.release()

    for _ in range(3):  # one at a time: the same thread each time
        pool.submit(job)
        assert done.acquire(timeout=10)
        time.sleep(0.02)
    assert len(set(seen)) == 1
    gate, seen[:] = threading.Event(), []
    for _ in range(6):  # all blocked at once: six threads, or this would deadlock
        pool.submit(job, gate)
    deadline = time.time() + 10
    while len(seen) < 6 and time.time() < deadline:
        time.sleep(0.01)
    assert len(set(seen)) == 6
    gate.set()
    for _ in range(6):
        assert done.acquire(timeout=10)
    time.sleep(1.0)  # every thread idle past idle_s: all gone
    assert not any(t.is_alive() for t in seen)
    pool.submit(job)
    assert done.acquire(timeout=10)


def test_sigterm_finishes_in_flight_request_then_exits(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/nemotron_jax/jax_cache"))
    proc = subprocess.Popen([sys.executable, "-m", "nemotron_jax.cli", "serve", "--preset", "toy-tiny",
                             "--random-init", "--port", "0", "--decode-chunk", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        line = ""
        deadline = time.time() + 120
        while not line.startswith("READY") and time.time() < deadline:
            line = proc.stdout.readline()
        assert line.startswith("READY"), line
        port = int(line.strip().rsplit(":", 1)[1].split("/")[0])
        result = {}

        def request():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("POST", "/v1/completions", json.dumps({"prompt": "hi", "max_tokens": 24, "seed": 0}),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            result["status"], result["body"] = resp.status, json.loads(resp.read())

        t = threading.Thread(target=request)
        t.start()
        time.sleep(1.0)  # the request is in flight (compiling or decoding)
        proc.send_signal(signal.SIGTERM)
        t.join(120)
        assert proc.wait(60) == 0
        assert result["status"] == 200 and result["body"]["usage"]["completion_tokens"] >= 1
    finally:
        if proc.poll() is None:
            proc.kill()


def test_checkpoint_folders_load(tmp_path, params):
    """--checkpoint understands params-only folders and HF folders (no generation: loading only)."""
    from nemotron_jax.checkpoint.params_io import save_params
    from nemotron_jax.inference.server import load_model

    save_params(tmp_path / "ckpt", params, CFG)
    cfg, loaded = load_model(str(tmp_path / "ckpt"), None, False)
    assert cfg == CFG
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), jax.tree.map(jax.numpy.asarray, loaded),
                                     params))
    hf = os.path.join(os.path.dirname(__file__), "fixtures", "hf_tiny")
    cfg, loaded = load_model(hf, None, False)
    assert loaded["lm_head"]["kernel"].shape == (cfg.d_model, cfg.vocab_size)
    with pytest.raises(SystemExit, match="--preset"):
        load_model(str(tmp_path), None, False)


def test_serving_a_checkpoint_on_a_mesh_reads_it_shard_by_shard(tmp_path, params):
    """--tensor 2 --data 2: the checkpoint is restored straight into the serving layout (not whole on one device
    first), and the sharded sampler answers as the one-device one does."""
    from nemotron_jax.checkpoint.params_io import save_params
    from nemotron_jax.inference.server import load_model, serving_mesh

    save_params(tmp_path / "ckpt", params, CFG)
    mesh, pcfg = serving_mesh(tensor=2, data=2)
    cfg, loaded = load_model(str(tmp_path / "ckpt"), None, False, parallel=pcfg)
    wq = loaded["layers"]["attn"]["wq"]
    assert len(wq.sharding.device_set) == 4 and "tensor" in str(wq.sharding.spec)
    sp = SamplingParams(max_new_tokens=6, temperature=0.0)
    prompt = [TOK.encode("Hello", bos=True)]
    sharded = Sampler(loaded, cfg, tokenizer=TOK, chunk=4, mesh=mesh, parallel=pcfg).generate(prompt, sp)
    plain = Sampler(params, CFG, tokenizer=TOK, chunk=4).generate(prompt, sp)
    assert sharded[0][0].token_ids == plain[0][0].token_ids
