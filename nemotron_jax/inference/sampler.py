"""KV-cache sampling: one compiled prefill and one compiled decode chunk serve a whole (ragged) batch.

    rows  = prompts x n samples, right-padded to P (prompt padding has position -1: an empty cache slot)
    cache = init_cache(cfg, B, S)          # per layer keys [B, K, H, S], values [B, K, S, H]; S >= len_b + max_new_b
    prefill: forward_cached(prompts, write_index=0, fresh) -> sample token 0 from each row's last prompt logit
    repeat (host) until every row is done:
        decode_chunk: lax.while_loop over up to `chunk` steps, all rows in lock-step:
            row b feeds its token j-1 at position (= cache slot) len_b + j - 1  -> sample its token j
            a row is done at a stop token id or at its own max_new_tokens
        host: detokenize rows that have stop strings, mark the ones that hit one done; stream deltas

The host loop lives in decode_batch.py, where rows may also join and leave between chunks (continuous batching).
Batch B and the token budget N are bucketed to powers of two, prompt length P and cache length S also to 1.5x
powers of two (every step reads all S slots), so varied requests reuse a handful of compiled programs. Every row
has its own PRNG key (fold_in(seed, sample index), then fold_in(token index)), so a seeded row gives the same tokens
whatever else shares its batch and whenever it joined. Unsharded, the weights are served with each layer's q/k/v
projections fused into one matrix (`serving_params`).
Per-token log-probs are the model's (log-softmax of the raw logits, before temperature/top-k/top-p), as OpenAI-
compatible servers report them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from nemotron_jax.config import ModelConfig, ParallelConfig
from nemotron_jax.model import forward_cached, fuse_qkv, init_cache, logical_axes, unstack_layers
from nemotron_jax.parallel.axes import ACT_KV_HEADS, BATCH, CACHE_LENGTH, shard

Params = dict[str, Any]
MAX_STOP_IDS = 4  # per-row stop token ids (eos + up to 3 more), a fixed shape so it never forces a recompile
MAX_TOP_LOGPROBS = 20  # OpenAI's limit for top_logprobs


class Tokenizer(Protocol):
    def encode(self, text: str, *, bos: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion. temperature 0 = greedy; top_k 0 and top_p 1 turn those filters off."""

    max_new_tokens: int = 16
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: Optional[int] = None  # None: a fresh random seed per call
    n: int = 1  # completions per prompt
    stop: tuple[str, ...] = ()  # stop strings (need a tokenizer); the stop string is not part of the output
    stop_token_ids: tuple[int, ...] = ()  # in addition to eos
    ignore_eos: bool = False
    logprobs: Optional[int] = None  # None: no log-probs; k >= 0: the chosen token's log-prob plus the top k

    def __post_init__(self) -> None:
        checks = [
            (self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (self.temperature >= 0.0, f"temperature must be >= 0, got {self.temperature}"),
            (self.top_k >= 0, f"top_k must be >= 0 (0 = off), got {self.top_k}"),
            (0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}"),
            (self.n >= 1, f"n must be >= 1, got {self.n}"),
            (len(self.stop_token_ids) < MAX_STOP_IDS,
             f"at most {MAX_STOP_IDS - 1} stop_token_ids are supported, got {len(self.stop_token_ids)}"),
            (self.logprobs is None or 0 <= self.logprobs <= MAX_TOP_LOGPROBS,
             f"logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {self.logprobs}"),
            (all(isinstance(s, str) and s for s in self.stop), "stop strings must be non-empty strings"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def replace(self, **kw: Any) -> "SamplingParams":
        return dataclasses.replace(self, **kw)


@dataclass
class Completion:
    """One finished sample: generated ids (eos included, stop-string tail removed) and their log-probs."""

    prompt_index: int
    sample_index: int
    token_ids: list[int]
    text: Optional[str]
    finish_reason: str  # "stop" (eos / stop id / stop string) or "length"
    logprobs: Optional[list[float]] = None
    top_logprobs: Optional[list[list[tuple[int, float]]]] = None
    prompt_tokens: int = 0


@dataclass
class Delta:
    """Newly final output of one row since the last chunk (for streaming)."""

    row: int
    token_ids: list[int]
    text: str
    finished: Optional[str] = None  # finish_reason once the row is done


# ------------------------------------------------------------------------------------------------------------
# Device code: sampling, prefill, decode
# ------------------------------------------------------------------------------------------------------------


def filter_logits(logits: Float[Array, "B V"], temperature: Float[Array, "B"], top_k: Int[Array, "B"],
                  top_p: Float[Array, "B"]) -> tuple[Float[Array, "B V"], Int[Array, "B V"]]:
    """Temperature-scaled logits sorted descending, with tokens outside top-k / the top-p nucleus set to -inf.

    Returns (filtered sorted logits, vocabulary ids in that order). The nucleus is the smallest prefix of the
    sorted distribution whose mass reaches top_p (the most likely token is always kept).
    """
    scaled = logits.astype(jnp.float32) / jnp.maximum(temperature, 1e-6)[:, None]
    sorted_logits, order = jax.lax.top_k(scaled, scaled.shape[-1])
    rank = jnp.arange(scaled.shape[-1], dtype=jnp.int32)[None, :]
    keep = (top_k[:, None] <= 0) | (rank < top_k[:, None])
    masked = jnp.where(keep, sorted_logits, -jnp.inf)
    probs = jax.nn.softmax(masked, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = keep & ((mass_before < top_p[:, None]) | (rank == 0))
    return jnp.where(keep, sorted_logits, -jnp.inf), order


def first_argmax(logits: Float[Array, "B V"]) -> Int[Array, "B"]:
    """jnp.argmax over the vocabulary (the first maximal index) as a max pass and a min pass: XLA CPU runs
    argmax's joint (value, index) reduction ~3x slower (bench-cpu decode: 0.15 of a 5.5 ms step)."""
    v = logits.shape[-1]
    top = jnp.max(logits, axis=-1, keepdims=True)
    idx = jnp.min(jnp.where(logits == top, jax.lax.broadcasted_iota(jnp.int32, logits.shape, 1), v), axis=-1)
    return jnp.minimum(idx, v - 1)  # a NaN row matches nothing: stay a valid id


def sample_tokens(logits: Float[Array, "B V"], keys: Array, temperature: Float[Array, "B"], top_k: Int[Array, "B"],
                  top_p: Float[Array, "B"]) -> Int[Array, "B"]:
    """Greedy where temperature == 0, else a draw from the filtered distribution with each row's own key."""
    greedy = first_argmax(logits)

    sampled = temperature > 0
    filters = sampled & ((top_k > 0) | (top_p < 1.0))

    def plain_draw() -> Array:
        scaled = logits.astype(jnp.float32) / jnp.maximum(temperature, 1e-6)[:, None]
        return jax.vmap(jax.random.categorical)(keys, scaled).astype(jnp.int32)

    def filtered_draw() -> Array:
        filtered, order = filter_logits(logits, temperature, top_k, top_p)
        pick = jax.vmap(jax.random.categorical)(keys, filtered)
        picked = jnp.take_along_axis(order, pick[:, None], axis=-1)[:, 0].astype(jnp.int32)
        return jnp.where(filters, picked, plain_draw())  # a row's draw never depends on its batch mates

    # The full-vocabulary sort is only paid when some sampled row filters (top-k / top-p); an all-greedy batch
    # skips sampling entirely.
    branch = jnp.where(jnp.any(filters), 2, jnp.where(jnp.any(sampled), 1, 0))
    drawn = jax.lax.switch(branch, [lambda: greedy, plain_draw, filtered_draw])
    return jnp.where(sampled, drawn, greedy)


def _token_logprobs(logits: Float[Array, "B V"], tokens: Int[Array, "B"], k: int):
    """log-softmax at the chosen token (and the top k), without materialising the [B, V] log-softmax."""
    logits = logits.astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, axis=-1)
    chosen = jnp.take_along_axis(logits, tokens[:, None], axis=-1)[:, 0] - lse
    if k == 0:
        return chosen, None, None
    top_vals, top_ids = jax.lax.top_k(logits, k)
    return chosen, top_ids.astype(jnp.int32), top_vals - lse[:, None]


def _select_and_record(state: dict, logits: Float[Array, "B V"], k: int) -> dict:
    """Sample every live row's next token (its own token index `num`) and write it and its log-probs out."""
    num = state["num"]
    keys = jax.vmap(jax.random.fold_in)(state["keys"], num)
    tok = sample_tokens(logits, keys, state["temperature"], state["top_k"], state["top_p"])
    live = ~state["done"]
    tok = jnp.where(live, tok, 0)
    chosen, top_ids, top_vals = _token_logprobs(logits, tok, k)
    rows = jnp.arange(tok.shape[0])
    at = jnp.where(live, num, state["tokens"].shape[1])  # finished rows write nothing (out of bounds: dropped)
    out = dict(state)
    out["tokens"] = state["tokens"].at[rows, at].set(tok, mode="drop")
    out["logps"] = state["logps"].at[rows, at].set(chosen, mode="drop")
    if k:
        out["top_ids"] = state["top_ids"].at[rows, at].set(top_ids, mode="drop")
        out["top_logps"] = state["top_logps"].at[rows, at].set(top_vals, mode="drop")
    num = num + live.astype(jnp.int32)
    hit_stop = jnp.any(tok[:, None] == state["stop_ids"], axis=-1)
    out["num"] = num
    out["done"] = state["done"] | (live & (hit_stop | (num >= state["max_new"])))
    out["last"] = tok
    return out


def _sharded(rules: Optional[tuple]):
    """Logical-axis rules in scope while tracing (static, so sharded and plain programs never share a cache)."""
    return nn.logical_axis_rules(rules) if rules is not None else contextlib.nullcontext()


def _shard_state(state: dict) -> dict:
    """Rows over the batch axes, the KV cache's kv heads over tensor (a no-op without rules in scope)."""
    out = {key: shard(v, (BATCH,) + (None,) * (v.ndim - 1)) for key, v in state.items() if key != "cache"}
    keys, values = (BATCH, ACT_KV_HEADS, None, CACHE_LENGTH), (BATCH, ACT_KV_HEADS, CACHE_LENGTH, None)
    cache = state["cache"]
    out["cache"] = {"layers": tuple({"k": shard(c["k"], keys), "v": shard(c["v"], values)} for c in cache["layers"]),
                    "slot_positions": shard(cache["slot_positions"], (BATCH, CACHE_LENGTH))}
    return out


@functools.partial(jax.jit, static_argnames=("cfg", "cache_len", "budget", "k", "rules"))
def prefill(params: Params, cfg: ModelConfig, prompts: Int[Array, "B P"], lengths: Int[Array, "B"], row: dict,
            cache_len: int, budget: int, k: int, rules: Optional[tuple] = None) -> dict:
    """Run the prompts through the model into a fresh cache of `cache_len` slots and sample each first token."""
    with _sharded(rules):
        return _prefill(params, cfg, prompts, lengths, row, cache_len, budget, k)


def _prefill(params: Params, cfg: ModelConfig, prompts: Array, lengths: Array, row: dict, cache_len: int,
             budget: int, k: int) -> dict:
    b, p = prompts.shape
    idx = jnp.arange(p, dtype=jnp.int32)[None, :]
    positions = jnp.where(idx < lengths[:, None], idx, -1)
    cache = init_cache(cfg, b, cache_len)
    logits, cache = forward_cached(params, prompts, cfg, cache, positions=positions,
                                   write_index=jnp.zeros((b,), jnp.int32), logits_index=jnp.maximum(lengths - 1, 0),
                                   fresh=True)
    row = dict(row)
    row["keys"] = _row_keys(row.pop("seeds"), row.pop("sample_index"))
    state = {**row, "cache": cache, "lengths": lengths,
             "tokens": jnp.zeros((b, budget), jnp.int32), "logps": jnp.zeros((b, budget), jnp.float32),
             "num": jnp.zeros((b,), jnp.int32), "last": jnp.zeros((b,), jnp.int32)}
    if k:
        state["top_ids"] = jnp.zeros((b, budget, k), jnp.int32)
        state["top_logps"] = jnp.zeros((b, budget, k), jnp.float32)
    return _shard_state(_select_and_record(_shard_state(state), logits[:, 0], k))


@functools.partial(jax.jit, static_argnames=("cfg", "chunk", "k", "rules"), donate_argnames=("state",))
def decode_chunk(params: Params, cfg: ModelConfig, state: dict, chunk: int, k: int,
                 rules: Optional[tuple] = None) -> dict:
    """Up to `chunk` lock-step decode steps (fewer if every row finishes first). The state is donated: the KV
    cache and the output buffers are updated in place."""
    with _sharded(rules):
        return _decode_chunk(params, cfg, state, chunk, k)


def _decode_chunk(params: Params, cfg: ModelConfig, state: dict, chunk: int, k: int) -> dict:
    cache_len = state["cache"]["slot_positions"].shape[1]

    def running(carry: tuple) -> Array:
        i, s = carry
        return (i < chunk) & ~jnp.all(s["done"])

    def step(carry: tuple) -> tuple:
        i, s = carry
        # Row b's last token sits at position (and slot) len_b + num_b - 1; finished rows write an empty slot.
        at = jnp.minimum(s["lengths"] + s["num"] - 1, cache_len - 1)
        positions = jnp.where(s["done"], -1, at)[:, None]
        logits, cache = forward_cached(params, s["last"][:, None], cfg, s["cache"], positions=positions,
                                       write_index=at)
        return i + 1, _shard_state(_select_and_record({**s, "cache": cache}, logits[:, 0], k))

    return jax.lax.while_loop(running, step, (jnp.int32(0), _shard_state(state)))[1]


_FILL = {"done": True, "slot_positions": -1, "stop_ids": -1, "lengths": 1, "max_new": 1}  # an empty (dead) row


@functools.partial(jax.jit, static_argnames=("batch", "cache_len", "budget", "k", "rules"))
def resize_state(state: dict, batch: int, cache_len: int, budget: int, k: int,
                 rules: Optional[tuple] = None) -> dict:
    """The same rows in a state with more rows / cache slots / token budget / top-k (new rows are empty)."""

    def grow(key: str, a: Array, shape: tuple) -> Array:
        pad = [(0, t - n) for n, t in zip(a.shape, shape)]
        return jnp.pad(a, pad, constant_values=_FILL.get(key, 0))

    with _sharded(rules):
        out = {key: grow(key, v, (batch,) + v.shape[1:]) for key, v in state.items()
               if key not in ("cache", "tokens", "logps", "top_ids", "top_logps")}
        for key in ("tokens", "logps"):
            out[key] = grow(key, state[key], (batch, budget))
        if k:
            for key, dt in (("top_ids", jnp.int32), ("top_logps", jnp.float32)):
                old = state.get(key, jnp.zeros(state["tokens"].shape + (0,), dt))
                out[key] = grow(key, old, (batch, budget, k))
        cache = state["cache"]
        def cache_shape(name: str, a: Array) -> tuple:  # keys [B, K, H, S], values [B, K, S, H]
            _, kv, x, y = a.shape
            return (batch, kv, x, cache_len) if name == "k" else (batch, kv, cache_len, y)

        out["cache"] = {"layers": tuple({n: grow(n, c[n], cache_shape(n, c[n])) for n in ("k", "v")}
                                        for c in cache["layers"]),
                        "slot_positions": grow("slot_positions", cache["slot_positions"], (batch, cache_len))}
        return _shard_state(out)


@functools.partial(jax.jit, static_argnames=("rules",), donate_argnames=("state",))
def insert_rows(state: dict, new: dict, slots: Int[Array, "b"], rules: Optional[tuple] = None) -> dict:
    """Copy the rows of `new` (a prefilled state of the same cache/budget/top-k sizes) into rows `slots` of the
    state; a slot index >= the state's batch drops that row (padding)."""
    with _sharded(rules):
        return _shard_state(jax.tree.map(lambda a, b: a.at[slots].set(b, mode="drop"), state, new))


@functools.partial(jax.jit, static_argnames=("rules",))
def take_rows(state: dict, rows: Int[Array, "b"], rules: Optional[tuple] = None) -> dict:
    """A smaller state holding rows `rows` of the state (compaction once most rows have finished)."""
    with _sharded(rules):
        return _shard_state(jax.tree.map(lambda a: a[rows], state))


# ------------------------------------------------------------------------------------------------------------
# Host side: bucketing, rows, stop strings, streaming
# ------------------------------------------------------------------------------------------------------------


def bucket(n: int, minimum: int, maximum: Optional[int] = None, *, halves: bool = False) -> int:
    """The next power of two >= n (at least `minimum`, at most `maximum` when given and n fits). With `halves`,
    1.5x powers of two count too (16, 24, 32, 48, ...): twice the shapes, half the average padding."""
    size = max(minimum, 1 << max(0, (n - 1).bit_length()))
    if halves and size >= 4 and size * 3 // 4 >= max(n, minimum):
        size = size * 3 // 4
    return max(n, min(size, maximum)) if maximum is not None else size


def top_logprobs_bucket(k: int) -> int:
    return 0 if k == 0 else (5 if k <= 5 else MAX_TOP_LOGPROBS)


@dataclass
class Row:
    """One sample to generate: a prompt (token ids), its sampling parameters and which sample of n it is."""

    prompt: list[int]
    params: SamplingParams
    prompt_index: int = 0
    sample_index: int = 0


def _row_seed(params: SamplingParams) -> tuple[int, int]:
    """A row's seed as threefry key data (high, low 32 bits): all 64 seed bits count (jax.random.key keeps 32)."""
    seed = (params.seed if params.seed is not None else secrets.randbits(63)) & ((1 << 64) - 1)
    return seed >> 32, seed & 0xFFFFFFFF


def _row_keys(seeds: Array, sample_index: Array) -> Array:
    """Each row's key data: fold_in(seed key, sample index). Runs inside prefill, so admitting rows costs no eager
    JAX dispatch per row (it cost ~0.2 ms a row on the engine thread)."""
    return jax.random.key_data(jax.vmap(jax.random.fold_in)(jax.random.wrap_key_data(seeds), sample_index))


def _row_arrays(rows: Sequence[Row], batch: int, eos_id: int) -> dict:
    """Per-row sampling parameters as fixed-shape arrays (numpy only); padding rows start done."""
    stop_ids = np.full((batch, MAX_STOP_IDS), -1, np.int32)
    seeds, sample_index = np.zeros((batch, 2), np.uint32), np.zeros(batch, np.uint32)
    temperature, top_p = np.zeros(batch, np.float32), np.ones(batch, np.float32)
    top_k, max_new = np.zeros(batch, np.int32), np.ones(batch, np.int32)
    done = np.ones(batch, bool)
    for i, r in enumerate(rows):
        p = r.params
        ids = ([] if p.ignore_eos else [eos_id]) + list(p.stop_token_ids)
        stop_ids[i, :len(ids)] = ids
        seeds[i], sample_index[i] = _row_seed(p), r.sample_index
        temperature[i], top_k[i], top_p[i], max_new[i], done[i] = p.temperature, p.top_k, p.top_p, p.max_new_tokens, 0
    return {"stop_ids": stop_ids, "seeds": seeds, "sample_index": sample_index, "temperature": temperature,
            "top_k": top_k, "top_p": top_p, "max_new": max_new, "done": done}


def find_stop(text: str, stops: Sequence[str]) -> int:
    """Index of the earliest stop string in text, or -1."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters might still become a stop string (or an unfinished UTF-8 character)."""
    hold = 1 if text.endswith("\ufffd") else 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                hold = max(hold, n)
                break
    return hold


class _RowTracker:
    """Host view of one row: what was generated, whether a stop string ended it, and what was already streamed."""

    def __init__(self, row: Row, tokenizer: Optional[Tokenizer], eos_id: int):
        self.row, self.tok = row, tokenizer
        p = row.params
        self.stop_ids = set(p.stop_token_ids) | (set() if p.ignore_eos else {eos_id})
        self.ids: list[int] = []
        self.finish: Optional[str] = None
        self.text: Optional[str] = None
        self.sent_tokens, self.sent_chars = 0, 0

    def update(self, ids: list[int], device_done: bool) -> None:
        """Take the row's tokens so far; decide whether (and why) it finished."""
        self.ids = ids
        if self.row.params.stop and find_stop(self.tok.decode(ids), self.row.params.stop) >= 0:
            self._truncate_at_stop()
            return
        if device_done:
            self.finish = "stop" if ids and ids[-1] in self.stop_ids else "length"
        if self.tok is not None:
            shown = ids[:-1] if self.finish == "stop" else ids  # the stop token itself is not text
            self.text = self.tok.decode(shown)

    def _truncate_at_stop(self) -> None:
        """Keep the fewest tokens whose text reaches a stop string; the text ends right before it."""
        for n in range(1, len(self.ids) + 1):
            text = self.tok.decode(self.ids[:n])
            cut = find_stop(text, self.row.params.stop)
            if cut >= 0:
                self.ids, self.text, self.finish = self.ids[:n], text[:cut], "stop"
                return

    def delta(self, index: int) -> Optional[Delta]:
        """What may be streamed now: tokens so far, and text that can no longer turn into a stop string."""
        text = self.text or ""
        safe = len(text) if self.finish else len(text) - _held_back(text, self.row.params.stop)
        new_ids = self.ids[self.sent_tokens:]
        if safe <= self.sent_chars and not new_ids and not self.finish:
            return None
        piece = text[self.sent_chars:max(safe, self.sent_chars)]
        self.sent_chars = max(safe, self.sent_chars)
        self.sent_tokens = len(self.ids)
        return Delta(index, new_ids, piece, self.finish)


def serving_params(params: Params, cfg: ModelConfig, *, fused: bool = True) -> Params:
    """Params as decoding wants them: layers split (`unstack_layers`), with `fused` each layer's q/k/v projections
    as one matrix (`fuse_qkv`; unsharded serving only), and under a low-precision compute dtype matrices stored in
    it (the model casts them to it anyway; stored so, a step reads half the bytes)."""
    params = fuse_qkv(params) if fused else unstack_layers(params)
    dt = jnp.dtype(cfg.dtype)
    if dt == jnp.float32:
        return params
    return jax.tree.map(lambda a: a.astype(dt) if a.ndim >= 2 and a.dtype == jnp.float32 else a, params)


class Sampler:
    """Generates completions for batches of token-id prompts with one model.

    With `mesh` (from `parallel.mesh.make_mesh`) and its `parallel` config, parameters are placed by the RULES
    table (tensor parallel: heads / kv heads / mlp / vocab over `tensor`), rows are split over `data` (x `fsdp`)
    and the KV cache's kv-head axis over `tensor`; XLA inserts the collectives. Pipeline parallelism is a
    training layout and is refused here (serve a pipeline-trained model with tensor x data instead).
    """

    def __init__(self, params: Params, cfg: ModelConfig, *, tokenizer: Optional[Tokenizer] = None,
                 chunk: int = 32, min_prompt_bucket: int = 16, min_budget_bucket: int = 16, mesh: Any = None,
                 parallel: Optional[ParallelConfig] = None):
        self.cfg, self.tokenizer, self.mesh = cfg, tokenizer, mesh
        self.chunk, self.min_prompt_bucket, self.min_budget_bucket = chunk, min_prompt_bucket, min_budget_bucket
        self.rules, self.min_batch = None, 1
        if mesh is not None:
            params = self._place(params, mesh, parallel)
        self.params = serving_params(params, cfg, fused=mesh is None)  # tensor sharding splits q/k/v by heads

    def _place(self, params: Params, mesh: Any, parallel: Optional[ParallelConfig]) -> Params:
        """Check the layout, then put every parameter on the mesh as RULES say."""
        from jax.sharding import NamedSharding

        from nemotron_jax.parallel.axes import FSDP, DATA, PIPELINE, mesh_specs, rules_for
        from nemotron_jax.parallel.mesh import validate

        sizes = dict(zip(mesh.axis_names, mesh.devices.shape))
        pcfg = parallel or ParallelConfig(**{a: sizes.get(a, 1) for a in ("data", "fsdp", "pipeline", "tensor")})
        if sizes.get(PIPELINE, 1) > 1:
            raise ValueError("the sampler does not run pipeline-parallel layouts; build the serving mesh with "
                             "pipeline=1 (tensor x data), the checkpoint restores onto any mesh")
        validate(self.cfg, pcfg, num_devices=mesh.devices.size)
        self.rules = rules_for(False)  # decode steps are one token long: no sequence parallelism
        self.min_batch = sizes.get(DATA, 1) * sizes.get(FSDP, 1)
        specs = mesh_specs(logical_axes(self.cfg), self.rules)
        is_spec = lambda x: isinstance(x, jax.sharding.PartitionSpec)
        params = unstack_layers(params)
        layer_specs = jax.tree.map(lambda sp: jax.sharding.PartitionSpec(*sp[1:]), specs["layers"], is_leaf=is_spec)
        specs = {**specs, "layers": tuple(layer_specs for _ in params["layers"])}
        return jax.device_put(params, jax.tree.map(lambda sp: NamedSharding(mesh, sp), specs, is_leaf=is_spec))

    def _scope(self):
        return jax.set_mesh(self.mesh) if self.mesh is not None else contextlib.nullcontext()

    def check_fits(self, prompt_len: int, max_new_tokens: int) -> None:
        """Raise ValueError when a prompt plus its token budget would not fit the model's context."""
        if prompt_len < 1:
            raise ValueError("the prompt is empty: give at least one token")
        if prompt_len + max_new_tokens > self.cfg.max_seq_len:
            raise ValueError(f"the prompt has {prompt_len} tokens and max_tokens is {max_new_tokens}; together "
                             f"they exceed the model's context of {self.cfg.max_seq_len} tokens. Shorten the "
                             f"prompt or lower max_tokens.")

    def rows_for(self, prompts: Sequence[Sequence[int]],
                 params: SamplingParams | Sequence[SamplingParams]) -> list[Row]:
        plist = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        if len(plist) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(plist)} SamplingParams")
        rows = []
        for i, (prompt, p) in enumerate(zip(prompts, plist)):
            self.check_fits(len(prompt), p.max_new_tokens)
            if p.stop and self.tokenizer is None:
                raise ValueError("stop strings need a tokenizer (pass tokenizer= to the Sampler)")
            rows += [Row(list(map(int, prompt)), p, i, j) for j in range(p.n)]
        return rows

    def generate(self, prompts: Sequence[Sequence[int]],
                 params: SamplingParams | Sequence[SamplingParams] = SamplingParams()) -> list[list[Completion]]:
        """n completions for each prompt, in prompt order."""
        rows = self.rows_for(prompts, params)
        results = self.run_rows(rows)
        out: list[list[Completion]] = [[] for _ in prompts]
        for c in results:
            out[c.prompt_index].append(c)
        return out

    def batch_bucket(self, rows: int) -> int:
        """Device batch size for `rows` rows: a power of two, whole rows per data shard."""
        return -(-bucket(rows, 1) // self.min_batch) * self.min_batch

    def run_rows(self, rows: Sequence[Row], on_deltas: Optional[Callable[[list[Delta]], None]] = None
                 ) -> list[Completion]:
        """Generate every row in one batch; `on_deltas` is called after each decode chunk (streaming)."""
        from nemotron_jax.inference.decode_batch import DecodeBatch

        if not rows:
            raise ValueError("nothing to generate")
        batch = DecodeBatch(self)
        batch.admit(rows, [(None, i) for i in range(len(rows))])
        results: list[Optional[Completion]] = [None] * len(rows)
        while True:
            deltas, finished = batch.sync()
            if on_deltas is not None and deltas:
                on_deltas([d for _, d in deltas])
            for (_, i), c in finished:
                results[i] = c
            if not batch.active:
                return results
            batch.decode()
