"""Model clients for SDG: one interface, three backends, plus retries, a concurrency bound and a response cache.

A backend answers raw requests `request(kind, payload) -> dict` for kind in {"chat", "complete", "reward"}:

    chat:     {"messages": [{"role", "content"}...], "n", "temperature", "top_p", "max_tokens", "stop", "seed"}
              -> {"texts": [str] * n}
    complete: {"prompt": str, ...same sampling fields}                   -> {"texts": [str] * n}
    reward:   {"messages": [..., {"role": "assistant", ...}]}            -> {"reward": float, "attributes": {name: v}}

`ModelClient` wraps a backend with the things a pipeline needs: a cache keyed by the exact request (so a replay or
a resumed run pays nothing twice), retries with exponential backoff on `TransientError`, and a semaphore that
bounds requests in flight. Backends: `OpenAIBackend` (any OpenAI-compatible HTTP endpoint: this project's server,
vLLM, NIM...), `InProcessBackend` (callables over a local model, no HTTP) and `ScriptedBackend` (deterministic
functions, for tests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, TypeVar

Messages = list[dict[str, str]]
KINDS = ("chat", "complete", "reward")
T = TypeVar("T")
R = TypeVar("R")


class ClientError(RuntimeError):
    """A request the endpoint rejected for good (bad parameters, unknown model...): retrying will not help."""


class TransientError(RuntimeError):
    """A failure worth retrying: connection refused/reset, timeout, HTTP 408/429/5xx."""


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one generation request (OpenAI field names)."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_tokens < 1:
            raise ValueError(f"Sampling needs n >= 1 and max_tokens >= 1, got n={self.n}, max_tokens={self.max_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"Sampling needs temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")

    def payload(self) -> dict:
        return {"n": self.n, "temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                "stop": list(self.stop), "seed": self.seed}


class Backend(Protocol):
    """Something that answers raw requests; `name` is the model name recorded in provenance."""

    name: str

    def request(self, kind: str, payload: dict) -> dict: ...


# ---------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------

_TRANSIENT_HTTP = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend:
    """An OpenAI-compatible HTTP endpoint (stdlib http.client; no SDK). Key from `api_key` or the env var.

    Each thread keeps one keep-alive connection (HTTP/1.1), so a pipeline does not pay a TCP handshake per request;
    a connection the server closed is reopened once before the failure counts as transient. `keep_alive=False`
    opens a connection per request (for servers that answer in two TCP segments without TCP_NODELAY, where
    Nagle's algorithm and delayed ACKs add ~40 ms to every kept-alive request).
    """

    def __init__(self, base_url: str, model: str, *, api_key: Optional[str] = None,
                 api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 120.0, reward_path: str = "/reward",
                 keep_alive: bool = True):
        self.base_url = base_url.rstrip("/")
        url = urllib.parse.urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must look like http://host:port/v1, got {base_url!r}")
        self._scheme, self._host, self._port, self._prefix = url.scheme, url.hostname, url.port, url.path
        self.name = model
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        self.timeout_s = timeout_s
        self.reward_path = reward_path
        self.keep_alive = keep_alive
        self._local = threading.local()

    def request(self, kind: str, payload: dict) -> dict:
        if kind == "reward":
            body = self._post(self.reward_path, {"model": self.name, "messages": payload["messages"]})
            return {"reward": float(body["reward"]), "attributes": dict(body.get("attributes") or {})}
        path = "/chat/completions" if kind == "chat" else "/completions"
        req = {"model": self.name, **{k: v for k, v in payload.items() if v is not None}}
        if not req.get("stop"):
            req.pop("stop", None)
        body = self._post(path, req)
        choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
        texts = [c["message"]["content"] if kind == "chat" else c["text"] for c in choices]
        return {"texts": texts}

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def _post(self, path: str, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if not self.keep_alive:
            headers["Connection"] = "close"
        data, where = json.dumps(body).encode(), self.base_url + path
        for attempt in range(2):
            try:
                conn = self._connection(fresh=attempt > 0)
                conn.request("POST", self._prefix + path, body=data, headers=headers)
                resp = conn.getresponse()
                status, raw = resp.status, resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                if attempt == 1:  # a kept-alive connection may have been closed by the server: reopen once
                    self._connection(fresh=True)
                    raise TransientError(f"POST {where} failed: {e}") from None
            except (TimeoutError, OSError, http.client.HTTPException) as e:
                self._connection(fresh=True)
                raise TransientError(f"POST {where} failed: {e}") from None
        if status >= 400:
            err = TransientError if status in _TRANSIENT_HTTP else ClientError
            raise err(f"POST {where} -> HTTP {status}: {raw.decode(errors='replace')[:500]}")
        return json.loads(raw)


class InProcessBackend:
    """A local model behind plain callables, no HTTP.

    `generate(prompts: list[str|Messages], sampling: Sampling, chat: bool) -> list[list[str]]` (n texts per prompt)
    and optionally `reward(conversations: list[Messages]) -> list[(reward, attributes)]`.
    `nemotron_jax.inference.client.InferenceClient(...).as_sdg_backend()` builds one over a local model; its
    callables are thread-safe and batch concurrent calls on the device, so calls are not serialised here unless
    `serialize=True` (for callables that are not thread-safe).
    """

    def __init__(self, name: str, generate: Callable[..., list[list[str]]],
                 reward: Optional[Callable[[list[Messages]], list[tuple[float, dict]]]] = None, *,
                 serialize: bool = False):
        self.name = name
        self._generate = generate
        self._reward = reward
        self._lock = threading.Lock() if serialize else None

    def request(self, kind: str, payload: dict) -> dict:
        try:
            if self._lock is None:
                return self._request(kind, payload)
            with self._lock:
                return self._request(kind, payload)
        except Exception as e:  # the inference client's APIError carries the HTTP status the server would send
            status = getattr(e, "status", None)
            if isinstance(status, int):
                err = TransientError if status in _TRANSIENT_HTTP else ClientError
                raise err(f"in-process model {self.name!r}: {status}: {e}") from e
            raise

    def _request(self, kind: str, payload: dict) -> dict:
        if kind == "reward":
            if self._reward is None:
                raise ClientError(f"in-process model {self.name!r} has no reward function")
            reward, attrs = self._reward([payload["messages"]])[0]
            return {"reward": float(reward), "attributes": dict(attrs)}
        sampling = Sampling(**{k: (tuple(v) if k == "stop" else v) for k, v in payload.items()
                               if k in Sampling.__dataclass_fields__})
        prompt = payload["messages"] if kind == "chat" else payload["prompt"]
        return {"texts": list(self._generate([prompt], sampling, kind == "chat")[0])}


class ScriptedBackend:
    """Deterministic answers from a function `script(kind, payload) -> dict`, with a call log (for tests)."""

    def __init__(self, script: Callable[[str, dict], dict], name: str = "scripted", fail_first: int = 0):
        self.name = name
        self.script = script
        self.calls: list[tuple[str, dict]] = []
        self._fail_left = fail_first  # raise TransientError this many times first (retry tests)
        self._lock = threading.Lock()

    def request(self, kind: str, payload: dict) -> dict:
        with self._lock:
            self.calls.append((kind, payload))
            if self._fail_left > 0:
                self._fail_left -= 1
                raise TransientError("scripted transient failure")
        return self.script(kind, payload)


# ---------------------------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------------------------

def request_key(model: str, kind: str, payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the exact request (model, kind, every field)."""
    blob = json.dumps({"model": model, "kind": kind, "payload": payload}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """An on-disk (sqlite) map from request key to response; safe across threads and processes (shards)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._local = threading.local()
        with self._conn() as c:
            c.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, request TEXT, response TEXT)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process, skips per-put fsync
            self._local.conn = conn
        return conn

    def get(self, key: str) -> Optional[dict]:
        row = self._conn().execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, request: dict, response: dict) -> None:
        with self._conn() as c:
            c.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                      (key, json.dumps(request, sort_keys=True), json.dumps(response)))

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()[0]


# ---------------------------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class ClientStats:
    """Counters: requests asked, answered from cache, sent to the backend, retried."""

    requests: int = 0
    cache_hits: int = 0
    backend_calls: int = 0
    retries: int = 0


class ModelClient:
    """chat / complete / reward over a backend, with cache, retries+backoff and bounded requests in flight."""

    def __init__(self, backend: Backend, *, cache: Optional[ResponseCache] = None, max_retries: int = 4,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, max_in_flight: int = 32,
                 sleep: Callable[[float], None] = time.sleep):
        self.backend = backend
        self.name = backend.name
        self.cache = cache
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = ClientStats()
        self._sem = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self._sleep = sleep

    def chat(self, messages: Messages, sampling: Sampling = Sampling()) -> list[str]:
        """n completions of a conversation (the model's chat template applies)."""
        return self.request("chat", {"messages": list(messages), **sampling.payload()})["texts"]

    def complete(self, prompt: str, sampling: Sampling = Sampling()) -> list[str]:
        """n raw-text completions of `prompt`."""
        return self.request("complete", {"prompt": prompt, **sampling.payload()})["texts"]

    def reward(self, messages: Messages) -> tuple[float, dict[str, float]]:
        """(scalar reward, attribute values) of a conversation ending in an assistant turn."""
        out = self.request("reward", {"messages": list(messages)})
        return out["reward"], out.get("attributes", {})

    def request(self, kind: str, payload: dict) -> dict:
        """One raw request: from the cache if seen before, else the backend (retrying transient failures)."""
        if kind not in KINDS:
            raise ValueError(f"request kind must be one of {KINDS}, got {kind!r}")
        key = request_key(self.name, kind, payload)
        self._count("requests")
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self._count("cache_hits")
            return hit
        response = self._with_retries(kind, payload)
        if self.cache is not None:
            self.cache.put(key, {"model": self.name, "kind": kind, "payload": payload}, response)
        return response

    def _with_retries(self, kind: str, payload: dict) -> dict:
        for attempt in range(self.max_retries + 1):
            try:
                with self._sem:
                    self._count("backend_calls")
                    return self.backend.request(kind, payload)
            except TransientError:
                if attempt == self.max_retries:
                    raise
                self._count("retries")
                self._sleep(min(self.max_backoff_s, self.backoff_s * 2 ** attempt))
        raise AssertionError("unreachable")

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)


def map_concurrent(fn: Callable[[T], R], items: Sequence[T], concurrency: int) -> list[R]:
    """fn over items with at most `concurrency` threads; results in input order; the first error propagates."""
    if concurrency <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(fn, items))


def make_backend(spec: Mapping[str, Any]) -> Backend:
    """A backend from a config dict: {"backend": "openai"|"inprocess"|"scripted", ...}.

    openai:    base_url (or env NEMOTRON_SDG_BASE_URL), model, api_key_env, timeout_s, reward_path, keep_alive
    inprocess: factory = "module:function" returning an InProcessBackend (built lazily; loads a model)
    scripted:  script = "module:function" (kind, payload) -> dict; name
    """
    kind = spec.get("backend", "openai")
    if kind == "openai":
        base_url = spec.get("base_url") or os.environ.get("NEMOTRON_SDG_BASE_URL")
        if not base_url:
            raise ValueError("openai backend needs base_url in the model config or NEMOTRON_SDG_BASE_URL in env")
        return OpenAIBackend(base_url, spec.get("model", "default"), api_key=spec.get("api_key"),
                             api_key_env=spec.get("api_key_env", "OPENAI_API_KEY"),
                             timeout_s=float(spec.get("timeout_s", 120.0)),
                             reward_path=spec.get("reward_path", "/reward"),
                             keep_alive=bool(spec.get("keep_alive", True)))
    if kind == "inprocess":
        return _resolve(spec["factory"])(**spec.get("args", {}))
    if kind == "scripted":
        return ScriptedBackend(_resolve(spec["script"]), name=spec.get("name", "scripted"))
    raise ValueError(f"unknown backend {kind!r}; use openai, inprocess or scripted")


def _resolve(ref: Any) -> Callable:
    if callable(ref):
        return ref
    import importlib

    module, _, attr = str(ref).partition(":")
    if not attr:
        raise ValueError(f"expected 'module:function', got {ref!r}")
    return getattr(importlib.import_module(module), attr)

