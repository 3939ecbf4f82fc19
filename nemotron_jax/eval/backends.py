"""Ways to reach a model: the project's in-process client, or any OpenAI-compatible `/v1/completions` endpoint.

    CompletionsGenerator   prompts -> greedy texts (temperature 0); in-process (`inference.client`) or HTTP
    CompletionsScorer      (context, continuation) -> log-likelihood through `echo=True` + `logprobs`, the way
                           lm-evaluation-harness scores API models. Needs a server that echoes prompt log-probs
                           (vLLM does; this project's server does not, and answers 400) — in-process scoring uses
                           `scoring.ModelScorer`, which batches through `model.forward` directly.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, Sequence

from nemotron_jax.eval.generative import Prompt, prompt_text
from nemotron_jax.eval.text import Tokenizer, split_continuation

Post = Callable[[dict], dict]
MAX_API_STOP = 4  # the OpenAI API accepts at most 4 stop strings; callers also cut at every stop string locally


class BackendError(RuntimeError):
    """The model endpoint refused or failed a request; the message carries its answer."""


def http_post(base_url: str, route: str = "/v1/completions", api_key: Optional[str] = None,
              timeout_s: float = 600.0) -> Post:
    """A JSON POST to `base_url + route` (base_url may end in /v1 or not)."""
    base = base_url.rstrip("/")
    url = (base[:-3] if base.endswith("/v1") else base) + route

    def post(body: dict) -> dict:
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        if api_key:
            req.add_header("Authorization", f"Bearer {api_key}")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise BackendError(f"{url} answered {e.code}: {e.read().decode('utf-8', 'replace')[:500]}") from None
        except urllib.error.URLError as e:
            raise BackendError(f"cannot reach {url}: {e.reason}") from None

    return post


def client_post(client: Any) -> Post:
    """An `inference.client.InferenceClient` as a Post (same request/response dicts, no HTTP)."""
    def post(body: dict) -> dict:
        try:
            return client.completions(**body)
        except Exception as e:  # APIError carries the OpenAI-style body
            raise BackendError(f"in-process completion failed: {e}") from e

    return post


def encode_text(tok: Any, text: str) -> list[int]:
    """Plain text with any chat markers as their single ids, the text between them encoded piece by piece (the
    way data/chat.py tokenises a rendered single-turn template in training)."""
    from nemotron_jax.data.chat import CHAT_TOKENS

    pattern = "(" + "|".join(re.escape(t) for t in CHAT_TOKENS) + ")"
    return [i for part in re.split(pattern, text) if part
            for i in ([tok.piece_to_id(part)] if part in CHAT_TOKENS else tok.encode(part))]


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _texts(res: dict, n: int) -> list[dict]:
    choices = sorted(res["choices"], key=lambda c: c["index"])
    if len(choices) != n:
        raise BackendError(f"asked for {n} completions, got {len(choices)}")
    return choices


class CompletionsGenerator:
    """Greedy completions, `batch` prompts per request and `concurrency` requests in flight (the server batches)."""

    def __init__(self, post: Post, model: str = "local", *, tokenizer: Optional[Any] = None,
                 max_seq_len: Optional[int] = None, batch: int = 16, concurrency: int = 4) -> None:
        self.post, self.model, self.tokenizer, self.max_seq_len = post, model, tokenizer, max_seq_len
        self.batch, self.concurrency = batch, concurrency

    @classmethod
    def in_process(cls, client: Any, **kw: Any) -> "CompletionsGenerator":
        """Through `InferenceClient`; prompts are sent as BOS + token ids of the client's tokenizer, and prompts
        too long for the context lose their oldest tokens (after BOS) so that max_tokens still fit."""
        return cls(client_post(client), client.model_name, tokenizer=client.service.tokenizer,
                   max_seq_len=client.service.max_seq_len, **kw)

    def _fit(self, ids: list[int], max_tokens: int) -> list[int]:
        if self.max_seq_len is None or len(ids) + max_tokens <= self.max_seq_len:
            return ids
        keep = self.max_seq_len - max_tokens - 1  # prompt tokens after BOS
        if keep < 1:
            raise BackendError(f"max_tokens={max_tokens} leaves no room for a prompt in the model's context of "
                               f"{self.max_seq_len} tokens; lower max_tokens")
        return ids[:1] + ids[1:][-keep:]

    @classmethod
    def http(cls, base_url: str, model: str, api_key: Optional[str] = None, **kw: Any) -> "CompletionsGenerator":
        return cls(http_post(base_url, api_key=api_key), model, **kw)

    def _prompt(self, chunk: Sequence[Prompt], max_tokens: int = 0) -> Any:
        """Text for a remote server; token ids (BOS + template pieces, as in training) with our tokenizer."""
        if self.tokenizer is None:
            return [prompt_text(p) for p in chunk]
        from nemotron_jax.data.chat import encode_prompt

        tok = self.tokenizer
        return [self._fit(encode_prompt(tok, list(p)) if not isinstance(p, str) else
                          [tok.bos_id] + encode_text(tok, p), max_tokens) for p in chunk]

    def generate(self, prompts: Sequence[Prompt], *, max_tokens: int, stop: Sequence[str] = ()) -> list[str]:
        def one(chunk: Sequence[Prompt]) -> list[str]:
            body = {"model": self.model, "prompt": self._prompt(chunk, max_tokens), "max_tokens": max_tokens,
                    "temperature": 0.0, "stop": list(stop)[:MAX_API_STOP] or None}
            return [c["text"] for c in _texts(self.post(body), len(chunk))]

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return [t for part in pool.map(one, _chunks(list(prompts), self.batch)) for t in part]


class CompletionsScorer:
    """Log-likelihood through `/v1/completions` with echo: sums the echoed log-probs of the continuation's tokens.

    With a `tokenizer` (the server's own), prompts go as token ids and the continuation is exactly its tokens;
    without one, prompts go as text and the continuation is the tokens whose text offset is at or past the
    context's end (a token straddling the boundary counts as context).
    """

    def __init__(self, post: Post, model: str = "local", *, tokenizer: Optional[Tokenizer] = None,
                 add_bos: bool = False, bos_id: int = 2, batch: int = 16, concurrency: int = 4) -> None:
        self.post, self.model, self.tokenizer = post, model, tokenizer
        self.add_bos, self.bos_id, self.batch, self.concurrency = add_bos, bos_id, batch, concurrency

    @classmethod
    def http(cls, base_url: str, model: str, api_key: Optional[str] = None, **kw: Any) -> "CompletionsScorer":
        return cls(http_post(base_url, api_key=api_key), model, **kw)

    def _encode(self, context: str, continuation: str) -> tuple[Any, int, int]:
        """(prompt, where the continuation starts, where it ends) in tokens (ids mode) or characters (text mode)."""
        if self.tokenizer is None:
            return context + continuation, len(context), len(context) + len(continuation)
        ctx, cont = split_continuation(self.tokenizer, context, continuation)
        ctx = ([self.bos_id] if self.add_bos else []) + ctx
        return ctx + cont, len(ctx), len(ctx) + len(cont)

    def _parse(self, choice: dict, start: int, end: int) -> tuple[float, bool]:
        lp = choice.get("logprobs") or {}
        if "token_logprobs" not in lp:
            raise BackendError("the server returned no echoed token_logprobs; it must support echo=True with "
                               "logprobs on /v1/completions")
        if self.tokenizer is None:
            keep = [i for i, off in enumerate(lp["text_offset"]) if start <= off < end]
        else:
            keep = list(range(start, end))
        if not keep:
            raise BackendError("the continuation has no tokens of its own in the echoed prompt")
        total = sum(float(lp["token_logprobs"][i]) for i in keep)
        tops = lp.get("top_logprobs") or []
        greedy = all(i < len(tops) and tops[i] and max(tops[i], key=tops[i].get) == lp["tokens"][i] for i in keep)
        return total, greedy

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        encoded = [self._encode(c, k) for c, k in requests]

        def one(chunk: Sequence[tuple[Any, int, int]]) -> list[tuple[float, bool]]:
            body = {"model": self.model, "prompt": [e[0] for e in chunk], "echo": True, "logprobs": 1,
                    "max_tokens": 1, "temperature": 0.0}
            return [self._parse(c, s, e) for c, (_, s, e) in zip(_texts(self.post(body), len(chunk)), chunk)]

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return [r for part in pool.map(one, _chunks(encoded, self.batch)) for r in part]
