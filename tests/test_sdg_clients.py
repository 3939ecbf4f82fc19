"""SDG clients: cache keyed by the exact request, retries with backoff, bounded in-flight requests, HTTP backend."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nemotron_jax.sdg import clients as C


def echo(kind: str, payload: dict) -> dict:
    if kind == "reward":
        return {"reward": float(len(payload["messages"][-1]["content"])), "attributes": {}}
    text = payload["messages"][-1]["content"] if kind == "chat" else payload["prompt"]
    return {"texts": [f"{text}|{payload['seed']}|{j}" for j in range(payload["n"])]}


def test_cache_replays_exact_requests_without_backend_calls(tmp_path) -> None:
    cache = C.ResponseCache(str(tmp_path / "c.sqlite"))
    backend = C.ScriptedBackend(echo)
    client = C.ModelClient(backend, cache=cache)
    msgs = [{"role": "user", "content": "hi"}]
    first = client.chat(msgs, C.Sampling(n=2, seed=1, temperature=0.7))
    assert first == ["hi|1|0", "hi|1|1"]
    # a different seed or temperature is a different request
    client.chat(msgs, C.Sampling(n=2, seed=2, temperature=0.7))
    client.chat(msgs, C.Sampling(n=2, seed=1, temperature=0.8))
    assert len(backend.calls) == 3 and len(cache) == 3
    # a fresh client over the same cache file (a replayed run) makes no backend calls
    backend2 = C.ScriptedBackend(lambda k, p: pytest.fail("replay must not call the model"))
    client2 = C.ModelClient(backend2, cache=C.ResponseCache(str(tmp_path / "c.sqlite")))
    assert client2.chat(msgs, C.Sampling(n=2, seed=1, temperature=0.7)) == first
    assert client2.stats.cache_hits == 1 and client2.stats.backend_calls == 0


def test_retries_transient_errors_with_exponential_backoff() -> None:
    sleeps = []
    client = C.ModelClient(C.ScriptedBackend(echo, fail_first=3), backoff_s=0.5, sleep=sleeps.append)
    assert client.complete("x", C.Sampling(seed=0)) == ["x|0|0"]
    assert sleeps == [0.5, 1.0, 2.0]
    assert client.stats.retries == 3 and client.stats.backend_calls == 4


def test_gives_up_after_max_retries_and_never_retries_client_errors() -> None:
    client = C.ModelClient(C.ScriptedBackend(echo, fail_first=10), max_retries=2, sleep=lambda s: None)
    with pytest.raises(C.TransientError):
        client.complete("x")
    assert client.stats.backend_calls == 3

    def bad(kind, payload):
        raise C.ClientError("bad request")

    backend = C.ScriptedBackend(bad)
    with pytest.raises(C.ClientError):
        C.ModelClient(backend, sleep=lambda s: None).complete("x")
    assert len(backend.calls) == 1


def test_in_flight_requests_are_bounded() -> None:
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def slow(kind, payload):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return echo(kind, payload)

    client = C.ModelClient(C.ScriptedBackend(slow), max_in_flight=3)
    out = C.map_concurrent(lambda i: client.complete(str(i), C.Sampling(seed=i)), list(range(24)), concurrency=12)
    assert out == [[f"{i}|{i}|0"] for i in range(24)]  # input order kept
    assert 2 <= state["peak"] <= 3


def test_sampling_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="top_p"):
        C.Sampling(top_p=0.0)
    with pytest.raises(ValueError, match="n >= 1"):
        C.Sampling(n=0)


class _FakeOpenAI(BaseHTTPRequestHandler):
    """A tiny OpenAI-shaped endpoint: 503 on the first call, then echoes; /reward scores by length."""

    protocol_version = "HTTP/1.1"  # keep-alive, like nemotron-jax serve
    calls = 0
    seen: list = []
    ports: set = set()

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        type(self).ports.add(self.client_address[1])
        type(self).calls += 1
        if type(self).calls == 1:
            out, status = {"error": {"message": "busy"}}, 503
        elif body.get("model") != "m":
            out, status = {"error": {"message": "unknown model"}}, 404
        elif self.path == "/v1/chat/completions":
            out, status = {"choices": [{"index": i, "message": {"role": "assistant", "content": f"c{i}"}}
                                       for i in reversed(range(body["n"]))]}, 200
        elif self.path == "/v1/completions":
            out, status = {"choices": [{"index": 0, "text": body["prompt"] + "!"}]}, 200
        else:
            out, status = {"reward": 1.5, "attributes": {"helpfulness": 2.0}}, 200
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_openai_backend_over_http_with_retry_auth_and_errors(monkeypatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MY_KEY", "sekrit")
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        backend = C.make_backend({"backend": "openai", "base_url": base, "model": "m", "api_key_env": "MY_KEY"})
        client = C.ModelClient(backend, sleep=lambda s: None)
        assert client.chat([{"role": "user", "content": "q"}], C.Sampling(n=2)) == ["c0", "c1"]  # by index
        assert client.stats.retries == 1  # the 503
        assert client.complete("ab") == ["ab!"]
        assert client.reward([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == (
            1.5, {"helpfulness": 2.0})
        assert _FakeOpenAI.seen[-1][0] == "/v1/reward" and _FakeOpenAI.seen[-1][1] == "Bearer sekrit"
        assert len(_FakeOpenAI.ports) == 1  # one kept-alive connection served all four requests
        _FakeOpenAI.ports.clear()
        fresh = C.ModelClient(C.make_backend({"backend": "openai", "base_url": base, "model": "m",
                                              "keep_alive": False}))
        assert [fresh.complete(s) for s in ("x", "y")] == [["x!"], ["y!"]] and len(_FakeOpenAI.ports) == 2
        bad = C.ModelClient(C.OpenAIBackend(base, "other"), sleep=lambda s: None)
        with pytest.raises(C.ClientError, match="404.*unknown model"):
            bad.complete("x")
        dead = C.ModelClient(C.OpenAIBackend("http://127.0.0.1:9", "m", timeout_s=2), max_retries=1,
                             sleep=lambda s: None)
        with pytest.raises(C.TransientError):
            dead.complete("x")
    finally:
        server.shutdown()


def test_make_backend_errors_say_what_to_set(monkeypatch) -> None:
    monkeypatch.delenv("NEMOTRON_SDG_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="base_url"):
        C.make_backend({"backend": "openai", "model": "m"})
    with pytest.raises(ValueError, match="unknown backend"):
        C.make_backend({"backend": "grpc"})


def test_in_process_backend_maps_requests_to_callables() -> None:
    seen = []

    def generate(prompts, sampling, chat):
        seen.append((prompts, sampling, chat))
        return [[f"out{j}" for j in range(sampling.n)] for _ in prompts]

    backend = C.InProcessBackend("local", generate, reward=lambda convs: [(0.5, {"a": 1.0}) for _ in convs])
    client = C.ModelClient(backend)
    assert client.chat([{"role": "user", "content": "x"}], C.Sampling(n=3, stop=("\n",), seed=4)) == [
        "out0", "out1", "out2"]
    assert seen[0][1] == C.Sampling(n=3, stop=("\n",), seed=4) and seen[0][2] is True
    assert client.reward([{"role": "assistant", "content": "y"}]) == (0.5, {"a": 1.0})
    with pytest.raises(C.ClientError, match="no reward"):
        C.ModelClient(C.InProcessBackend("g", generate)).reward([])


def test_in_process_api_errors_map_to_client_and_transient_errors() -> None:
    class APIError(Exception):
        def __init__(self, status: int, message: str):
            super().__init__(message)
            self.status = status

    def refuse(status):
        def generate(prompts, sampling, chat):
            raise APIError(status, "prompt longer than the context")
        return generate

    with pytest.raises(C.ClientError, match="400: prompt longer"):
        C.ModelClient(C.InProcessBackend("g", refuse(400))).complete("x")
    flaky = C.ModelClient(C.InProcessBackend("g", refuse(503)), max_retries=1, sleep=lambda s: None)
    with pytest.raises(C.TransientError):
        flaky.complete("x")
    assert flaky.stats.retries == 1


class _Forgetful(_FakeOpenAI):
    """Answers, then drops the connection without saying so (like a restarted server or an idle timeout)."""

    def do_POST(self):
        type(self).calls = 1  # never the 503 branch
        super().do_POST()
        self.close_connection = True


def test_a_silently_closed_keep_alive_connection_is_reopened() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forgetful)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = C.ModelClient(C.OpenAIBackend(f"http://127.0.0.1:{server.server_address[1]}/v1", "m"),
                               max_retries=0)
        assert [client.complete(s) for s in ("a", "b", "c")] == [["a!"], ["b!"], ["c!"]]
        assert client.stats.retries == 0
    finally:
        server.shutdown()
