"""The reward model (SPEC §3): the LM trunk with its output matrix replaced by a linear head WITH bias, read at the
final token of each sequence (the `<extra_id_2>` that closes `...Assistant\\n{response}\\n<extra_id_2>`).

    h = forward_hidden(trunk, tokens)                 # [B, T, D], final-normed
    ends[b, s] = last t with segment_ids[b, t] == s+1 # one end per (packed) sequence; padding is segment 0
    attrs = h[b, ends[b, s]] @ W + bias               # [B, S, A], fp32
    reward = attrs @ weights                          # the 340B aggregation by default

Parameters: `{"embed", "layers", "final_norm", "reward_head": {"kernel": [D, A], "bias": [A]}}` — an LM tree
without `lm_head`, so an LM checkpoint initialises the trunk directly (`reward_params_from_lm`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from nemotron_jax.config import ModelConfig, ParallelConfig
from nemotron_jax.losses.reward import HELPSTEER_ATTRIBUTES, aggregate_reward
from nemotron_jax.model.transformer import forward_hidden, logical_axes
from nemotron_jax.parallel.axes import EMBED, REWARD_ATTRS

Params = dict[str, Any]
TRUNK_KEYS = ("embed", "layers", "final_norm")


class RewardHead(nn.Module):
    """Linear [D, A] + bias [A] in fp32 (a handful of outputs: precision is free here)."""

    cfg: ModelConfig
    num_attributes: int

    @nn.compact
    def __call__(self, h: Float[Array, "... D"]) -> Float[Array, "... A"]:
        w = self.param("kernel", nn.with_logical_partitioning(nn.initializers.normal(self.cfg.init_std),
                                                              (EMBED, REWARD_ATTRS)),
                       (self.cfg.d_model, self.num_attributes))
        b = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, (REWARD_ATTRS,)),
                       (self.num_attributes,))
        return jnp.einsum("...D,DA->...A", h.astype(jnp.float32), w) + b


def init_head(cfg: ModelConfig, rng: jax.Array, num_attributes: int) -> Params:
    h = jnp.zeros((1, cfg.d_model), jnp.float32)
    return nn.unbox(RewardHead(cfg, num_attributes).init(rng, h)["params"])


def reward_params_from_lm(lm_params: Params, cfg: ModelConfig, rng: jax.Array,
                          num_attributes: int = len(HELPSTEER_ATTRIBUTES)) -> Params:
    """An LM checkpoint's trunk (lm_head dropped) plus a fresh reward head."""
    missing = [k for k in TRUNK_KEYS if k not in lm_params]
    if missing:
        raise KeyError(f"LM params lack {missing}; expected the tree of nemotron_jax.model.init_params")
    return {**{k: lm_params[k] for k in TRUNK_KEYS}, "reward_head": init_head(cfg, rng, num_attributes)}


def init_reward_params(cfg: ModelConfig, rng: jax.Array, num_attributes: int = len(HELPSTEER_ATTRIBUTES)) -> Params:
    """A randomly initialised reward model (tests, toy runs)."""
    from nemotron_jax.model.transformer import init_params

    k_trunk, k_head = jax.random.split(rng)
    return reward_params_from_lm(init_params(cfg, k_trunk), cfg, k_head, num_attributes)


def reward_logical_axes(cfg: ModelConfig, num_attributes: int = len(HELPSTEER_ATTRIBUTES)) -> Params:
    """PartitionSpecs of logical names for the reward tree (the trunk's, plus EMBED x REWARD_ATTRS for the head)."""
    lm = logical_axes(cfg)
    boxed = jax.eval_shape(lambda: RewardHead(cfg, num_attributes).init(jax.random.key(0),
                                                                       jnp.zeros((1, cfg.d_model)))["params"])
    return {**{k: lm[k] for k in TRUNK_KEYS}, "reward_head": nn.get_partition_spec(boxed)}


def sequence_end_indices(segment_ids: Int[Array, "B T"],
                         max_segments: int) -> tuple[Int[Array, "B S"], Bool[Array, "B S"]]:
    """Index of the last token of segments 1..S in each row, and whether that segment exists (0 = padding)."""
    seg = jnp.arange(1, max_segments + 1, dtype=segment_ids.dtype)
    t = jnp.arange(segment_ids.shape[1], dtype=jnp.int32)
    hit = segment_ids[:, None, :] == seg[None, :, None]  # [B, S, T]
    ends = jnp.max(jnp.where(hit, t, -1), axis=-1)
    return jnp.maximum(ends, 0), ends >= 0


def reward_forward(params: Params, tokens: Int[Array, "B T"], cfg: ModelConfig, *,
                   positions: Optional[Int[Array, "B T"]] = None, segment_ids: Optional[Int[Array, "B T"]] = None,
                   max_segments: int = 1, hidden_fn: Optional[Callable] = None
                   ) -> tuple[Float[Array, "B S A"], Bool[Array, "B S"]]:
    """Attribute predictions at the end of each sequence and which (row, segment) slots are real.

    `hidden_fn(trunk, tokens, *, positions, segment_ids)` replaces the plain trunk (pipelined layouts pass
    `parallel.training.make_forward_hidden(cfg, pcfg)`).
    """
    if segment_ids is None:  # one unpadded sequence per row
        segment_ids = jnp.ones(tokens.shape, jnp.int32)
    trunk = {k: params[k] for k in TRUNK_KEYS}
    hidden_fn = hidden_fn or (lambda p, t, **kw: forward_hidden(p, t, cfg, **kw))
    h = hidden_fn(trunk, tokens, positions=positions, segment_ids=segment_ids)
    ends, valid = sequence_end_indices(segment_ids, max_segments)
    h_end = jnp.take_along_axis(h, ends[..., None], axis=1)  # [B, S, D]
    num_attributes = params["reward_head"]["bias"].shape[0]
    attrs = RewardHead(cfg, num_attributes).apply({"params": params["reward_head"]}, h_end)
    return attrs, valid


def scalar_reward(attrs: Float[Array, "... A"], weights: Optional[Sequence[float]] = None) -> Float[Array, "..."]:
    """One number per sequence: the attribute itself for a 1-output head, else the weighted aggregation."""
    if attrs.shape[-1] == 1 and weights is None:
        return attrs[..., 0]
    return aggregate_reward(attrs, weights)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _score_rows(params: Params, tokens: Array, segment_ids: Array, cfg: ModelConfig) -> Array:
    return reward_forward(params, tokens, cfg, segment_ids=segment_ids)[0][:, 0]


def score(params: Params, cfg: ModelConfig, token_lists: Sequence[Sequence[int]], *,
          weights: Optional[Sequence[float]] = None, batch_size: int = 16,
          pad_to_multiple: int = 64, pad_id: int = 0, parallel: Optional[ParallelConfig] = None) -> dict[str, np.ndarray]:
    """Score already-encoded reward inputs (each ends with `<extra_id_2>`): {"attributes": [n, A], "reward": [n]}.

    Rows are right-padded to a multiple of `pad_to_multiple` (few distinct shapes, few compiles) and run in
    fixed-size batches; the last batch is padded with empty rows that are dropped again. With `parallel` (a
    ParallelConfig) the model runs sharded like a train step on that layout (`parallel.training.sharded_apply`),
    so a reward model too large for one device scores on the run's mesh; `batch_size` must then suit the layout.
    """
    if not token_lists:
        raise ValueError("score: no sequences given")
    longest = max(len(t) for t in token_lists)
    if longest > cfg.max_seq_len:
        raise ValueError(f"score: a sequence has {longest} tokens, more than model.max_seq_len={cfg.max_seq_len}")
    length = min(-(-longest // pad_to_multiple) * pad_to_multiple, cfg.max_seq_len)
    run = _score_runner(params, cfg, parallel, batch_size, length)
    out = []
    for start in range(0, len(token_lists), batch_size):
        chunk = list(token_lists[start:start + batch_size])
        tokens = np.full((batch_size, length), pad_id, np.int32)
        seg = np.zeros((batch_size, length), np.int32)
        for i, ids in enumerate(chunk):
            tokens[i, :len(ids)], seg[i, :len(ids)] = ids, 1
        seg[len(chunk):, 0] = 1  # filler rows: one dummy token so every row has an end
        out.append(np.asarray(run(tokens, seg))[:len(chunk)])
    attrs = np.concatenate(out)
    return {"attributes": attrs, "reward": np.asarray(scalar_reward(jnp.asarray(attrs), weights))}


def _score_runner(params: Params, cfg: ModelConfig, parallel: Optional[ParallelConfig], rows: int,
                  length: int) -> Callable[[np.ndarray, np.ndarray], Array]:
    """`run(tokens, segment_ids) -> attributes [rows, A]`, on one device or sharded over `parallel`'s mesh."""
    from nemotron_jax.parallel.mesh import layout_devices

    if parallel is None or layout_devices(parallel, jax.device_count()) == 1:
        return lambda tokens, seg: _score_rows(params, jnp.asarray(tokens), jnp.asarray(seg), cfg)
    from nemotron_jax.parallel.training import make_forward_hidden, sharded_apply

    hidden = make_forward_hidden(cfg, parallel)
    num_attributes = params["reward_head"]["bias"].shape[0]
    fn = lambda p, b: reward_forward(p, b["tokens"], cfg, segment_ids=b["segment_ids"],  # noqa: E731
                                     hidden_fn=hidden)[0][:, 0]
    run = sharded_apply(fn, params, cfg, parallel, rows=rows, seq_len=length,
                        param_logical_axes=reward_logical_axes(cfg, num_attributes))
    return lambda tokens, seg: run({"tokens": tokens, "segment_ids": seg})


def score_conversations(params: Params, cfg: ModelConfig, tokenizer: Any, prompts: Sequence[Any],
                        responses: Sequence[str], **kw: Any) -> dict[str, np.ndarray]:
    """Score (prompt, response) pairs given as text; a prompt is a user string or a list of chat messages.

    The `/v1/reward` route and SDG's RM-as-judge call this. Returns {"attributes": [n, A], "reward": [n]}.
    """
    from nemotron_jax.data.chat import encode_reward_input

    if len(prompts) != len(responses):
        raise ValueError(f"score_conversations: {len(prompts)} prompts but {len(responses)} responses")
    as_msgs = lambda p: [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
    ids = [encode_reward_input(tokenizer, as_msgs(p), r) for p, r in zip(prompts, responses)]
    return score(params, cfg, ids, pad_id=getattr(tokenizer, "pad_id", 0), **kw)
