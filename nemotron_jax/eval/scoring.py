"""Log-likelihood scoring of continuations, batched through `model.forward` in power-of-two buckets.

    rows = [ctx + cont] sorted by length (longest first)
    for each batch: T = next_pow2(longest row), B = pow2 rows fitting the token budget
        rows with identical input tokens (ctx + cont[:-1]) share one row; their final targets are alternatives
        tokens = row[:-1] (right padding); C = next_pow2(longest continuation); A = next_pow2(most alternatives)
        hidden = forward_hidden(tokens); logits = lm_head(hidden at the last C positions of each row)
        logp, greedy = masked sums over the continuation's targets     # one compile per (B, T, C, A) bucket

Only a handful of (B, T, C, A) shapes ever reach the compiler, so a whole benchmark compiles a few times, not once per
example. A continuation is "greedy" when every one of its tokens is the argmax of the model's distribution.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from nemotron_jax.config import ModelConfig
from nemotron_jax.eval.text import Tokenizer, split_continuation
from nemotron_jax.losses.common import token_logps
from nemotron_jax.model import forward_hidden
from nemotron_jax.model.transformer import LMHead

Params = dict[str, Any]


class LoglikelihoodScorer(Protocol):
    """Text-level scorer: (context, continuation) pairs -> (log p(continuation | context), is_greedy)."""

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]: ...


@dataclasses.dataclass(frozen=True)
class BucketPolicy:
    """Shapes the scorer may compile: lengths and batch sizes are powers of two within these bounds."""

    min_len: int = 16
    token_budget: int = 8192  # B * T per forward; bounds the [B, T, V] fp32 logits held at once
    max_batch: int = 64

    def __post_init__(self) -> None:
        for f in ("min_len", "token_budget", "max_batch"):
            if getattr(self, f) < 1:
                raise ValueError(f"BucketPolicy.{f} must be >= 1, got {getattr(self, f)}")


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _prev_pow2(n: int) -> int:
    return 1 << (max(1, int(n)).bit_length() - 1)


def plan_batches(lengths: Sequence[int], max_len: int, policy: BucketPolicy) -> list[tuple[list[int], int, int]]:
    """Group row indices (longest first) into batches; returns (indices, padded batch B, padded length T)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, start = [], 0
    while start < len(order):
        t = min(max(next_pow2(lengths[order[start]]), policy.min_len), max_len)
        cap = max(1, min(policy.max_batch, _prev_pow2(policy.token_budget // t)))
        idx = order[start:start + cap]
        batches.append((idx, min(next_pow2(len(idx)), cap), t))
        start += len(idx)
    return batches


@functools.partial(jax.jit, static_argnames=("cfg",))
def score_batch(params: Params, tokens: Int[Array, "B T"], targets: Int[Array, "B C"], body: Float[Array, "B C"],
                starts: Int[Array, "B"], last: Int[Array, "B"], alts: Int[Array, "B A"],
                cfg: ModelConfig) -> tuple[Float[Array, "B A"], Bool[Array, "B A"]]:
    """Log-likelihood of each row's continuation for A alternative final tokens, and whether it is all argmax.

    The window of C positions from `starts` holds the continuation's targets: `body` masks all but its final
    target, which sits at window index `last` and is taken from `alts` (requests that share every input token
    differ only there, so one row scores them all: MMLU's " A"/" B"/" C"/" D" cost one forward, not four).
    Only the window goes through the output matrix and log-softmax, which dominate with a large vocabulary.
    """
    hidden = forward_hidden(params, tokens, cfg)  # [B, T, D]
    idx = jnp.clip(starts[:, None] + jnp.arange(targets.shape[1])[None, :], 0, tokens.shape[1] - 1)  # [B, C]
    window = jnp.take_along_axis(hidden, idx[..., None], axis=1)  # [B, C, D]
    logits = LMHead(cfg).apply({"params": params["lm_head"]}, window)  # [B, C, V] fp32
    body_logp = jnp.sum(token_logps(logits, targets) * body, axis=-1)  # [B]
    body_greedy = jnp.all((jnp.argmax(logits, axis=-1) == targets) | (body == 0), axis=-1)  # [B]
    final = jnp.take_along_axis(logits, last[:, None, None], axis=1)[:, 0]  # [B, V]
    alt_logp = jnp.take_along_axis(final, alts, axis=-1) - jax.nn.logsumexp(final, axis=-1, keepdims=True)
    alt_greedy = jnp.argmax(final, axis=-1)[:, None] == alts  # [B, A]
    return body_logp[:, None] + alt_logp, body_greedy[:, None] & alt_greedy


def _row(ctx: Sequence[int], cont: Sequence[int], max_len: int, i: int) -> tuple[list[int], int]:
    """ctx + cont, left-truncated to max_len + 1 tokens; returns (row, continuation length)."""
    if not cont:
        raise ValueError(f"request {i}: empty continuation (nothing to score)")
    if not ctx:
        raise ValueError(f"request {i}: empty context; prepend a BOS token so the first continuation token has "
                         f"something to be predicted from")
    if len(cont) > max_len:
        raise ValueError(f"request {i}: continuation of {len(cont)} tokens does not fit the model's "
                         f"max_seq_len={max_len}")
    row = list(ctx) + list(cont)
    return row[-(max_len + 1):], len(cont)


def loglikelihood(params: Params, cfg: ModelConfig, contexts: Sequence[Sequence[int]],
                  continuations: Sequence[Sequence[int]], *,
                  policy: BucketPolicy = BucketPolicy()) -> tuple[np.ndarray, np.ndarray]:
    """log p(continuation | context) summed over tokens, and is-greedy, for each (context, continuation) pair.

    Contexts longer than the model's window lose their oldest tokens; the continuation is always scored whole.
    """
    if len(contexts) != len(continuations):
        raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations")
    max_len = cfg.max_seq_len
    rows = [_row(c, k, max_len, i) for i, (c, k) in enumerate(zip(contexts, continuations))]
    groups: dict[tuple[tuple[int, ...], int], list[int]] = {}  # (input tokens, n_cont) -> requests
    for i, (row, n_cont) in enumerate(rows):
        groups.setdefault((tuple(row[:-1]), n_cont), []).append(i)
    keys = list(groups)
    logps, greedy = np.zeros(len(rows), np.float64), np.zeros(len(rows), bool)
    for idx, b, t in plan_batches([len(k[0]) for k in keys], max_len, policy):
        c = min(max(next_pow2(max(keys[g][1] for g in idx)), 4), t)  # scored window, a power of two too
        a = next_pow2(max(len(groups[keys[g]]) for g in idx))
        tokens, targets, body = (np.zeros((b, t), np.int32), np.zeros((b, c), np.int32), np.zeros((b, c), np.float32))
        starts, last, alts = np.zeros(b, np.int32), np.zeros(b, np.int32), np.zeros((b, a), np.int32)
        for j, g in enumerate(idx):
            (inputs, n_cont), members = keys[g], groups[keys[g]]
            n, row = len(inputs), rows[members[0]][0]
            starts[j] = start = max(0, n - c)
            tokens[j, :n] = inputs
            targets[j, :n - start] = row[start + 1:]
            body[j, n - n_cont - start:n - 1 - start] = 1.0
            last[j] = n - 1 - start
            alts[j, :len(members)] = [rows[m][0][-1] for m in members]
        lp, gr = jax.device_get(score_batch(params, tokens, targets, body, starts, last, alts, cfg))
        for j, g in enumerate(idx):
            members = groups[keys[g]]
            logps[members], greedy[members] = lp[j, :len(members)], gr[j, :len(members)]
    return logps, greedy


class ModelScorer:
    """In-process scorer over a parameter tree: text pairs are tokenized, BOS-prefixed and bucketed."""

    def __init__(self, params: Params, cfg: ModelConfig, tokenizer: Tokenizer, *, add_bos: bool = True,
                 policy: BucketPolicy = BucketPolicy()) -> None:
        self.params, self.cfg, self.tokenizer = params, cfg, tokenizer
        self.add_bos, self.policy = add_bos, policy
        self.bos_id = int(getattr(tokenizer, "bos_id", cfg.bos_id))  # the tokenizer's own BOS when it has one

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        ctx, cont = split_continuation(self.tokenizer, context, continuation)
        return ([self.bos_id] if self.add_bos else []) + ctx, cont

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        pairs = [self.encode_pair(c, k) for c, k in requests]
        lp, gr = loglikelihood(self.params, self.cfg, [p[0] for p in pairs], [p[1] for p in pairs],
                               policy=self.policy)
        return [(float(a), bool(b)) for a, b in zip(lp, gr)]


def compiled_shapes() -> Optional[int]:
    """How many (B, T) buckets the scorer has compiled in this process (None if jax hides the count)."""
    size = getattr(score_batch, "_cache_size", None)
    return size() if callable(size) else None
