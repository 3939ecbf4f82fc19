"""OpenAI-compatible request handling, shared by the HTTP server and the in-process client.

`InferenceService` takes a request body (a dict shaped like the OpenAI API's) and returns the response dict, or for
`stream=True` an iterator of chunk dicts; bad input raises `APIError` with the HTTP status and an OpenAI-style body.

    /v1/completions       prompt: str | [str] | [int] | [[int]]; n, max_tokens (16), temperature (1), top_p, top_k,
                          stop, seed, logprobs (0..5 top alternatives), stream, stream_options.include_usage
    /v1/chat/completions  messages (Nemotron template, SPEC §5; stops at <extra_id_1>); max_tokens or
                          max_completion_tokens, logprobs (bool) + top_logprobs (0..20), and the same sampling fields
    /v1/reward            messages ending with the assistant reply -> {"reward", "attributes"} (reward models)
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

from nemotron_jax.inference.engine import BatchingEngine, compile_count
from nemotron_jax.inference.sampler import MAX_TOP_LOGPROBS, Completion, Delta, Row, SamplingParams

# SPEC §5. The template closes a reply with "\n<extra_id_1>": the newline is the template's, not the reply's, so a
# reply put back into a conversation (SDG pairs, SFT rows, the next turn) renders exactly as the model saw it.
TURN_MARKER = "<extra_id_1>"
CHAT_STOP_STRINGS = ("\n" + TURN_MARKER, TURN_MARKER, "<|endoftext|>")
MAX_N = 64
MAX_STOP = 4


class APIError(Exception):
    """A request the server refuses: HTTP status plus an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: Optional[str] = None,
                 code: Optional[str] = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _bad(message: str, param: Optional[str] = None, code: Optional[str] = None) -> APIError:
    return APIError(400, message, param, code)


# ------------------------------------------------------------------------------------------------------------
# Field validation
# ------------------------------------------------------------------------------------------------------------


def _number(body: dict, name: str, default: float, lo: float, hi: float, *, lo_open: bool = False) -> float:
    val = body.get(name)
    if val is None:
        return default
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
        raise _bad(f"'{name}' must be a number, got {val!r}", name)
    if val < lo or val > hi or (lo_open and val == lo):
        left = "(" if lo_open else "["
        raise _bad(f"'{name}' must be in {left}{lo}, {hi}], got {val}", name)
    return float(val)


def _integer(body: dict, name: str, default: Optional[int], lo: int, hi: Optional[int] = None) -> Optional[int]:
    val = body.get(name)
    if val is None:
        return default
    if isinstance(val, bool) or not isinstance(val, int):
        raise _bad(f"'{name}' must be an integer, got {val!r}", name)
    if val < lo or (hi is not None and val > hi):
        raise _bad(f"'{name}' must be between {lo} and {hi}, got {val}" if hi is not None
                   else f"'{name}' must be >= {lo}, got {val}", name)
    return val


def _stop(body: dict) -> tuple[str, ...]:
    val = body.get("stop")
    if val is None:
        return ()
    stops = [val] if isinstance(val, str) else val
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _bad("'stop' must be a non-empty string or a list of non-empty strings", "stop")
    if len(stops) > MAX_STOP:
        raise _bad(f"'stop' takes at most {MAX_STOP} strings, got {len(stops)}", "stop")
    return tuple(stops)


def _penalties(body: dict) -> None:
    for name in ("presence_penalty", "frequency_penalty"):
        if _number(body, name, 0.0, -2.0, 2.0) != 0.0:
            raise _bad(f"'{name}' is not supported by this server; leave it at 0", name)


def _sampling(body: dict, max_tokens: int, logprobs: Optional[int], extra_stop: Sequence[str] = (),
              stop_token_ids: Sequence[int] = ()) -> SamplingParams:
    _penalties(body)
    return SamplingParams(
        max_new_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, lo_open=True),
        top_k=_integer(body, "top_k", 0, 0) or 0,
        seed=_integer(body, "seed", None, -(2 ** 63), 2 ** 63 - 1),
        n=_integer(body, "n", 1, 1, MAX_N),
        stop=_stop(body) + tuple(s for s in extra_stop if s not in _stop(body)),
        stop_token_ids=tuple(stop_token_ids),
        ignore_eos=bool(body.get("ignore_eos", False)),
        logprobs=logprobs,
    )


# ------------------------------------------------------------------------------------------------------------
# The service
# ------------------------------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    rows: list[Row]
    prompts: list[list[int]]
    params: SamplingParams
    stream: bool
    include_usage: bool


class InferenceService:
    """The OpenAI-compatible surface over a BatchingEngine (policies) or a reward scorer (reward models)."""

    def __init__(self, model_name: str, tokenizer: Any, max_seq_len: int, *,
                 engine: Optional[BatchingEngine] = None,
                 reward_fn: Optional[Callable[[list[list[dict]]], list[tuple[float, dict[str, float]]]]] = None,
                 run_exclusive: Optional[Callable[[Callable[[], Any]], Any]] = None):
        if engine is None and reward_fn is None:
            raise ValueError("InferenceService needs an engine (a policy) or a reward_fn (a reward model)")
        self.model_name, self.tokenizer, self.max_seq_len = model_name, tokenizer, max_seq_len
        self.engine, self.reward_fn = engine, reward_fn
        self._exclusive = run_exclusive or (engine.run_exclusive if engine is not None else None)
        self._lock = threading.Lock()
        self._id_base, self._id_count = uuid.uuid4().hex[:12], itertools.count()
        self.created = int(time.time())

    # ---- routes -------------------------------------------------------------------------------------------------

    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": self.created,
                                            "owned_by": "nemotron_jax"}]}

    def health(self) -> dict:
        out = {"status": "ok", "model": self.model_name, "kind": "policy" if self.engine else "reward"}
        if self.engine is not None:
            s = self.engine.stats
            out.update(batches=s.batches, rows=s.rows, max_rows_in_batch=s.max_rows_in_batch, chunks=s.chunks,
                       chunk_rows=s.chunk_rows, compiles=compile_count())
        return out

    def completions(self, body: Any) -> dict | Iterator[dict]:
        """POST /v1/completions."""
        body = self._check_body(body)
        if "prompt" not in body:
            raise _bad("'prompt' is required", "prompt")
        if body.get("echo"):
            raise _bad("'echo' is not supported by this server", "echo")
        add_bos = body.get("add_special_tokens", True)
        if not isinstance(add_bos, bool):
            raise _bad("'add_special_tokens' must be true or false", "add_special_tokens")
        prompts = self._prompt_ids(body["prompt"], add_bos)
        max_tokens = _integer(body, "max_tokens", 16, 1)
        logprobs = _integer(body, "logprobs", None, 0, 5)
        prep = self._prepare(body, prompts, _sampling(body, max_tokens, logprobs))
        return self._respond(prep, "text_completion", "cmpl")

    def chat_completions(self, body: Any) -> dict | Iterator[dict]:
        """POST /v1/chat/completions."""
        from nemotron_jax.data.chat import ChatDataError, encode_prompt

        body = self._check_body(body)
        messages = body.get("messages")
        try:
            if not isinstance(messages, list) or not messages:
                raise ChatDataError("'messages' must be a non-empty list of {role, content} objects")
            ids = encode_prompt(self.tokenizer, messages)
        except ChatDataError as e:
            raise _bad(str(e), "messages") from None
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        max_tokens = _integer({"max_tokens": max_tokens}, "max_tokens", 16, 1)
        logprobs = None
        if body.get("logprobs"):
            logprobs = _integer(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
        turn_id = self.tokenizer.piece_to_id(TURN_MARKER)
        params = _sampling(body, max_tokens, logprobs, CHAT_STOP_STRINGS, (turn_id,))
        prep = self._prepare(body, [ids], params)
        return self._respond(prep, "chat.completion", "chatcmpl")

    def reward(self, body: Any) -> dict:
        """POST /v1/reward: {"messages": [... user ..., assistant reply]} -> {"reward", "attributes"}."""
        from nemotron_jax.data.chat import ChatDataError, check_messages

        body = self._check_body(body)
        if self.reward_fn is None:
            raise APIError(400, f"model {self.model_name!r} is a policy, not a reward model; /v1/reward needs a "
                                f"reward-model checkpoint", "model", "not_a_reward_model")
        convs = body.get("conversations") or [body.get("messages")]
        for c in convs:
            try:
                check_messages(c, "messages")
            except ChatDataError as e:
                raise _bad(str(e), "messages") from None
            if c[-1]["role"] != "assistant":
                raise _bad("the conversation to score must end with the assistant reply", "messages")
        scored = self._exclusive(lambda: self.reward_fn(convs)) if self._exclusive else self.reward_fn(convs)
        items = [{"reward": float(r), "attributes": {k: float(v) for k, v in a.items()}} for r, a in scored]
        out = {"object": "reward", "model": self.model_name, "data": items}
        if "conversations" not in body:
            out.update(items[0])
        return out

    # ---- helpers --------------------------------------------------------------------------------------------------

    def _check_body(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != self.model_name:
            raise APIError(404, f"the model {model!r} does not exist; this server serves {self.model_name!r}",
                           "model", "model_not_found")
        return body

    def _prompt_ids(self, prompt: Any, add_bos: bool) -> list[list[int]]:
        """Text prompts are encoded with BOS in front, as every training document starts (and as HF tokenizers and
        vLLM do; `add_special_tokens: false` leaves it out). Token-id prompts are taken exactly as sent."""
        if isinstance(prompt, str):
            return [self.tokenizer.encode(prompt, bos=add_bos)]
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            return [self.tokenizer.encode(p, bos=add_bos) for p in prompt]
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return [list(prompt)]
        if (isinstance(prompt, list) and prompt and all(isinstance(p, list) and p for p in prompt)
                and all(isinstance(t, int) and not isinstance(t, bool) for p in prompt for t in p)):
            return [list(p) for p in prompt]
        raise _bad("'prompt' must be a string, a list of strings, a list of token ids or a list of such lists",
                   "prompt")

    def _prepare(self, body: dict, prompts: list[list[int]], params: SamplingParams) -> _Prepared:
        vocab = getattr(self.tokenizer, "vocab_size", None)
        for i, ids in enumerate(prompts):
            if not ids:
                raise _bad(f"prompt {i} is empty", "prompt")
            if len(ids) + params.max_new_tokens > self.max_seq_len:
                raise _bad(f"prompt {i} has {len(ids)} tokens and max_tokens is {params.max_new_tokens}: together "
                           f"more than the model's context of {self.max_seq_len} tokens; shorten the prompt or "
                           f"lower max_tokens", "max_tokens" if len(ids) < self.max_seq_len else "prompt",
                           "context_length_exceeded")
            if vocab is not None and any(not 0 <= t < vocab for t in ids):
                raise _bad(f"prompt {i} has a token id outside the vocabulary [0, {vocab})", "prompt")
        if self.engine is None:
            raise APIError(400, f"model {self.model_name!r} is a reward model; use /v1/reward", "model",
                           "not_a_policy")
        stream = bool(body.get("stream", False))
        opts = body.get("stream_options") or {}
        if not isinstance(opts, dict):
            raise _bad("'stream_options' must be an object", "stream_options")
        rows = [Row(ids, params, i, j) for i, ids in enumerate(prompts) for j in range(params.n)]
        return _Prepared(rows, prompts, params, stream, bool(opts.get("include_usage", False)))

    def _respond(self, prep: _Prepared, kind: str, prefix: str) -> dict | Iterator[dict]:
        rid = f"{prefix}-{self._id_base}{next(self._id_count):012x}"  # unique per process, no uuid4 per request
        if prep.stream:
            return self._stream(prep, kind, rid)
        results = self.engine.generate(prep.rows)
        choices = [self._choice(c, i, kind) for i, c in enumerate(results)]
        return {"id": rid, "object": kind, "created": int(time.time()), "model": self.model_name,
                "choices": choices, "usage": _usage(prep, results)}

    def _choice(self, c: Completion, index: int, kind: str) -> dict:
        lp = self._logprobs(c, kind)
        if kind == "chat.completion":
            return {"index": index, "message": {"role": "assistant", "content": c.text}, "logprobs": lp,
                    "finish_reason": c.finish_reason}
        return {"index": index, "text": c.text, "logprobs": lp, "finish_reason": c.finish_reason}

    def _token_text(self, tok: int) -> str:
        return self.tokenizer.decode([tok])

    def _logprobs(self, c: Completion, kind: str) -> Optional[dict]:
        if c.logprobs is None:
            return None
        n = len(c.token_ids)
        toks = [self._token_text(t) for t in c.token_ids]
        if kind == "chat.completion":
            content = [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                        "top_logprobs": [{"token": self._token_text(i), "logprob": v,
                                          "bytes": list(self._token_text(i).encode())} for i, v in top]}
                       for t, lp, top in zip(toks, c.logprobs, c.top_logprobs)]
            return {"content": content}
        offsets, pos = [], 0
        for t in toks:
            offsets.append(pos)
            pos += len(t)
        top = [{self._token_text(i): v for i, v in alts} for alts in c.top_logprobs] if n else []
        return {"tokens": toks, "token_logprobs": c.logprobs, "top_logprobs": top, "text_offset": offsets}

    def _stream(self, prep: _Prepared, kind: str, rid: str) -> Iterator[dict]:
        """Chunks as the engine produces them; a final usage chunk when stream_options.include_usage."""
        events: queue.Queue = queue.Queue()
        future = self.engine.submit(prep.rows, on_deltas=events.put)
        future.add_done_callback(lambda f: events.put(None))
        chunk_kind = "chat.completion.chunk" if kind == "chat.completion" else "text_completion"
        created = int(time.time())
        greeted: set[int] = set()

        def chunk(choices: list[dict], usage: Optional[dict] = None) -> dict:
            out = {"id": rid, "object": chunk_kind, "created": created, "model": self.model_name, "choices": choices}
            if prep.include_usage:
                out["usage"] = usage
            return out

        def gen() -> Iterator[dict]:
            while (deltas := events.get()) is not None:
                yield chunk([self._delta_choice(d, kind, greeted) for d in deltas])
            results = future.result()  # raises if generation failed
            if prep.include_usage:
                yield chunk([], _usage(prep, results))

        return gen()

    def _delta_choice(self, d: Delta, kind: str, greeted: set[int]) -> dict:
        if kind == "chat.completion":
            delta: dict = {"content": d.text}
            if d.row not in greeted:
                greeted.add(d.row)
                delta = {"role": "assistant", **delta}
            return {"index": d.row, "delta": delta, "logprobs": None, "finish_reason": d.finished}
        return {"index": d.row, "text": d.text, "logprobs": None, "finish_reason": d.finished}


def _usage(prep: _Prepared, results: list[Completion]) -> dict:
    prompt = sum(len(p) for p in prep.prompts)
    completion = sum(len(c.token_ids) for c in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
