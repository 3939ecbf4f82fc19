"""The in-process client: the server's request/response semantics without HTTP, for SDG and evaluation.

    client = InferenceClient.from_params(params, cfg, tokenizer)          # or .from_checkpoint(dir)
    client.completions(prompt="Once", max_tokens=8, n=2, seed=0)        # the /v1/completions response dict
    client.chat_completions(messages=[{"role": "user", "content": "Hi"}])
    client.generate(["Hi"], Sampling(n=2), chat=True) -> [["...", "..."]]  # SDG's InProcessBackend callable
    client.as_sdg_backend()                                              # an sdg.clients Backend (batched)

Calls are thread-safe and go through the same BatchingEngine as the server, so many threads calling at once share
device batches. Bad input raises `APIError` (status + OpenAI-style body), exactly what the server would answer.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

from nemotron_jax.inference.api import APIError, InferenceService

__all__ = ["APIError", "InferenceClient", "SDGBackend", "reward_scorer"]


def reward_scorer(params: Any, cfg: Any, tokenizer: Any, weights: Optional[Sequence[float]] = None):
    """conversations (each ending with the assistant reply) -> [(reward, {attribute: value})] via model/heads.py."""
    from nemotron_jax.losses.reward import HELPSTEER_ATTRIBUTES
    from nemotron_jax.model.heads import score_conversations

    num = int(params["reward_head"]["bias"].shape[0])
    names = list(HELPSTEER_ATTRIBUTES) if num == len(HELPSTEER_ATTRIBUTES) else [f"attr_{i}" for i in range(num)]

    def score(conversations: list[list[dict]]) -> list[tuple[float, dict[str, float]]]:
        prompts = [c[:-1] for c in conversations]
        responses = [c[-1]["content"] for c in conversations]
        out = score_conversations(params, cfg, tokenizer, prompts, responses, weights=weights)
        return [(float(r), dict(zip(names, map(float, a)))) for r, a in zip(out["reward"], out["attributes"])]

    return score


class InferenceClient:
    """OpenAI-shaped calls on a local model (a policy, or a reward model for `reward`)."""

    def __init__(self, service: InferenceService):
        self.service = service
        self.model_name = service.model_name
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="inference-client")

    @classmethod
    def from_params(cls, params: Any, cfg: Any, tokenizer: Any = None, *, model_name: str = "local",
                    max_rows: int = 64, max_wait_ms: float = 2.0, chunk: int = 16, mesh: Any = None
                    ) -> "InferenceClient":
        """Serve `params` in-process; without a tokenizer, the byte-level fallback (smoke tests only)."""
        from nemotron_jax.inference.server import build_service

        if tokenizer is None:
            from nemotron_jax.inference.byte_tokenizer import ByteTokenizer

            tokenizer = ByteTokenizer(cfg.vocab_size)
        return cls(build_service(cfg, params, tokenizer, model_name, max_rows=max_rows, max_wait_ms=max_wait_ms,
                                 chunk=chunk, mesh=mesh))

    @classmethod
    def from_checkpoint(cls, checkpoint: str, *, tokenizer: Optional[str] = None, preset: Optional[str] = None,
                        model_name: Optional[str] = None, **kw: Any) -> "InferenceClient":
        """Load like `nemotron-jax serve --checkpoint` (params-only, HF or training folder)."""
        from pathlib import Path

        from nemotron_jax.inference.server import load_model, load_tokenizer_for

        cfg, params = load_model(checkpoint, preset, False)
        tok = load_tokenizer_for(tokenizer, checkpoint, cfg.vocab_size)
        return cls.from_params(params, cfg, tok, model_name=model_name or Path(checkpoint).name, **kw)

    # ---- the OpenAI routes --------------------------------------------------------------------------------------

    def models(self) -> dict:
        return self.service.models()

    def completions(self, **body: Any) -> Any:
        """The /v1/completions response dict (an iterator of chunk dicts when stream=True)."""
        return self.service.completions(body)

    def chat_completions(self, **body: Any) -> Any:
        """The /v1/chat/completions response dict (an iterator of chunk dicts when stream=True)."""
        return self.service.chat_completions(body)

    def reward(self, messages: list[dict]) -> dict:
        """The /v1/reward response: {"reward", "attributes", ...} for one conversation ending in the reply."""
        return self.service.reward({"messages": messages})

    # ---- the SDG InProcessBackend protocol ----------------------------------------------------------------------

    def generate(self, prompts: Sequence[Any], sampling: Any, chat: bool) -> list[list[str]]:
        """n texts per prompt; `sampling` has OpenAI field names (n, temperature, top_p, max_tokens, stop, seed).

        The prompts are submitted concurrently, so they run in the same device batch.
        """
        fields = ("n", "temperature", "top_p", "max_tokens", "stop", "seed")
        params = {f: getattr(sampling, f) for f in fields if getattr(sampling, f, None) is not None}
        if "stop" in params:
            params["stop"] = list(params["stop"]) or None

        def one(prompt: Any) -> list[str]:
            if chat:
                msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
                res = self.service.chat_completions({"messages": msgs, **params})
                return [c["message"]["content"] for c in res["choices"]]
            res = self.service.completions({"prompt": prompt, **params})
            return [c["text"] for c in res["choices"]]

        return list(self._pool.map(one, prompts))

    def score(self, conversations: Sequence[list[dict]]) -> list[tuple[float, dict[str, float]]]:
        """[(reward, attributes)] per conversation (SDG's reward callable)."""
        res = self.service.reward({"conversations": [list(c) for c in conversations]})
        return [(d["reward"], d["attributes"]) for d in res["data"]]

    def as_sdg_backend(self) -> "SDGBackend":
        """This client as an SDG backend (`sdg.clients.Backend`: name + request(kind, payload)).

        Unlike wrapping `generate` in `sdg.clients.InProcessBackend` (which holds a lock per call), requests from
        many SDG threads reach the batching engine together and share device batches.
        """
        return SDGBackend(self)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        if self.service.engine is not None:
            self.service.engine.close()

    def __enter__(self) -> "InferenceClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SDGBackend:
    """`sdg.clients.Backend` over an InferenceClient: kinds chat / complete / reward, thread-safe, no HTTP."""

    def __init__(self, client: InferenceClient):
        self.client, self.name = client, client.model_name

    def request(self, kind: str, payload: dict) -> dict:
        from nemotron_jax.sdg.clients import ClientError

        body = {k: v for k, v in payload.items() if v is not None and not (k == "stop" and not v)}
        try:
            if kind == "reward":
                out = self.client.service.reward({"messages": payload["messages"]})
                return {"reward": out["reward"], "attributes": out["attributes"]}
            if kind == "chat":
                res = self.client.service.chat_completions(body)
                return {"texts": [c["message"]["content"] for c in res["choices"]]}
            if kind == "complete":
                res = self.client.service.completions(body)
                return {"texts": [c["text"] for c in res["choices"]]}
        except APIError as e:
            raise ClientError(f"{self.name}: HTTP-equivalent {e.status}: {e.message}") from None
        raise ClientError(f"unknown request kind {kind!r}")
