"""Alignment tasks for the one training loop: chat SFT, DPO/RPO (+ the RPO iteration driver) and reward models.

Registered with `train.tasks.register_task`, so `train.loop.run(exp)` trains whichever `exp.loss` names:

    SFT               ChatData        packed LM rows, NLL on assistant tokens          count = trained tokens
    DPO / RPO         PreferenceData  chosen_* / rejected_* rows, one forward on [2B]  count = pairs
    RewardRegression  HelpSteerData   inputs/positions/segment_ids + labels [B, A]     count = valid labels
    BradleyTerry      PreferenceData  chosen_* / rejected_* reward inputs (+ margin)   count = pairs

Preference batch (all [B, T] unless noted): `chosen_inputs, chosen_targets, chosen_loss_mask, chosen_positions,
chosen_segment_ids` and the same `rejected_*`; optional `chosen_reward, rejected_reward` [B] (RPO) and
`chosen_ref_logps, rejected_ref_logps` [B] (cached reference; absent → the reference runs inside the step).

Reference policy = the run's starting point (`exp.init_from`, else the seed's fresh init, as the loop does).
`run_rpo(exp)` runs `loss.iterations` loop runs, each starting from and referencing the previous one's result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nemotron_jax import model as M
from nemotron_jax.config import (BradleyTerry, ChatData, ConfigError, DPO, Experiment, HelpSteerData, ModelConfig,
                                 ParallelConfig, PreferenceData, RewardRegression, RPO, SFT)
from nemotron_jax.data import chat
from nemotron_jax.data.packing import lm_example, pack_examples
from nemotron_jax.data.tokenizer import load_tokenizer
from nemotron_jax.losses.common import token_logps
from nemotron_jax.losses.preference import (REWARD_KINDS, chosen_sft_term, preference_loss, preference_metrics,
                                            response_logratio)
from nemotron_jax.losses.reward import bradley_terry_loss, label_mask, regression_loss
from nemotron_jax.model import heads
from nemotron_jax.checkpoint.params_io import params_shapes, read_params
from nemotron_jax.parallel.mesh import layout_devices
from nemotron_jax.train.tasks import Task, model_forward, next_token_loss, register_task

Params = Any
Batch = dict[str, np.ndarray]
SIDES = ("chosen", "rejected")
log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------------
# Iterators (deterministic, process-strided, resumable: state = epoch + position)
# ------------------------------------------------------------------------------------------------------------


class ExampleIterator:
    """Batches of `rows` built by `make_batch(indices)` from a seeded per-epoch permutation of `n` examples."""

    def __init__(self, n: int, make_batch: Callable[[np.ndarray], Batch], *, rows: int, seed: int,
                 shuffle: bool = True, process_index: int = 0, process_count: int = 1) -> None:
        if n < rows * process_count:
            raise ConfigError(f"only {n} examples, fewer than one global microbatch of {rows * process_count} rows; "
                              f"add data or lower batch.micro_batch")
        self.n, self.make_batch, self.rows, self.seed, self.shuffle = n, make_batch, rows, seed, shuffle
        self.process_index, self.process_count = process_index, process_count
        self.epoch, self.index = 0, 0

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)

    def __iter__(self) -> "ExampleIterator":
        return self

    def __next__(self) -> Batch:
        per_step = self.rows * self.process_count
        if self.index + per_step > self.n:  # drop the ragged tail of an epoch: every batch is full
            self.epoch, self.index = self.epoch + 1, 0
        picked = self._order()[self.index:self.index + per_step][self.process_index::self.process_count]
        self.index += per_step
        return self.make_batch(picked)

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def set_state(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])


class PackedChatIterator:
    """SFT rows: each epoch's shuffled examples are first-fit packed chunk by chunk (bounded memory, exact resume)."""

    def __init__(self, examples: Sequence[dict], *, seq_len: int, rows: int, seed: int, shuffle: bool, bins: int,
                 pad_id: int, chunk: int = 2048, process_index: int = 0, process_count: int = 1) -> None:
        self.examples, self.seq_len, self.rows, self.seed, self.shuffle = examples, seq_len, rows, seed, shuffle
        self.bins, self.pad_id, self.chunk = bins, pad_id, chunk
        self.process_index, self.process_count = process_index, process_count
        self.epoch, self.chunk_index, self.row_index = 0, 0, 0
        self._cache: tuple[tuple[int, int], list] = ((-1, -1), [])

    def _chunk_rows(self, epoch: int, chunk_index: int) -> list:
        if self._cache[0] != (epoch, chunk_index):
            n = len(self.examples)
            order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            part = order[chunk_index * self.chunk:(chunk_index + 1) * self.chunk]
            rows = pack_examples([self.examples[i] for i in part], seq_len=self.seq_len, mode="first_fit",
                                 pad_id=self.pad_id, bins=self.bins)
            self._cache = ((epoch, chunk_index), rows)
        return self._cache[1]

    def _next_row(self) -> dict:
        while True:
            rows = self._chunk_rows(self.epoch, self.chunk_index)
            if self.row_index < len(rows):
                self.row_index += 1
                return rows[self.row_index - 1]
            self.chunk_index, self.row_index = self.chunk_index + 1, 0
            if self.chunk_index * self.chunk >= len(self.examples):
                self.epoch, self.chunk_index = self.epoch + 1, 0

    def __iter__(self) -> "PackedChatIterator":
        return self

    def __next__(self) -> Batch:
        rows = [self._next_row() for _ in range(self.rows * self.process_count)]
        return chat.stack_rows(rows[self.process_index::self.process_count])

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "chunk": self.chunk_index, "row": self.row_index}

    def set_state(self, state: dict) -> None:
        self.epoch, self.chunk_index, self.row_index = int(state["epoch"]), int(state["chunk"]), int(state["row"])


# ------------------------------------------------------------------------------------------------------------
# SFT
# ------------------------------------------------------------------------------------------------------------


def read_chat_files(paths: Sequence[str]) -> list[list[chat.Message]]:
    return [conv for p in paths for conv in chat.read_chat_jsonl(p)]


def sft_conversations(data: ChatData, seed: int) -> list[list[chat.Message]]:
    """The stage's conversations plus a seeded `replay_fraction` subset of the replayed (previous-stage) data."""
    convs = read_chat_files(data.paths)
    if data.replay_path:
        replay = chat.read_chat_jsonl(data.replay_path)
        k = int(round(data.replay_fraction * len(replay)))
        picked = np.random.default_rng([seed, 7]).choice(len(replay), size=k, replace=False)
        convs += [replay[i] for i in sorted(picked)]
    return convs


def sft_examples(tok: Any, convs: Sequence[list[chat.Message]], *, append_eos: bool) -> list[dict]:
    return [lm_example(*chat.encode_chat(tok, c, append_eos=append_eos)) for c in convs]


def replay_documents(data: ChatData | PreferenceData) -> list[str]:
    """Every document of `data.text_replay_paths` (plain `{"text"}` JSONL, read whole); none is a config error."""
    docs = [d for p in data.text_replay_paths for d in chat.read_text_jsonl(p)]
    if not docs:
        raise ConfigError(f"{type(data).__name__}.text_replay_paths {data.text_replay_paths} hold no documents")
    return docs


def text_replay_examples(tok: Any, data: ChatData, n_convs: int, seed: int) -> list[dict]:
    """`text_replay_fraction * n_convs` documents of `text_replay_paths` as full-loss `[bos] + ids + [eos]`
    examples (a seeded pick, without replacement while the files hold enough). The files are read whole, like the
    SFT files: point it at a sample of a large corpus, not the corpus. Documents longer than a row are cut (and
    counted) by the packer."""
    n = int(round(data.text_replay_fraction * n_convs))
    if n == 0:
        return []
    docs = replay_documents(data)
    picked = np.random.default_rng([seed, 11]).choice(len(docs), size=n, replace=n > len(docs))
    return [lm_example(tok.encode(docs[i], bos=True, eos=True)) for i in picked]


def sft_iterator(data: ChatData, *, seq_len: int, rows: int, seed: int, process_index: int = 0,
                 process_count: int = 1) -> Any:
    """Packed (or one-per-row) LM batches of assistant-masked chat examples."""
    tok = load_tokenizer(data.tokenizer)
    convs = sft_conversations(data, seed)
    examples = sft_examples(tok, convs, append_eos=data.append_eos) + text_replay_examples(tok, data, len(convs), seed)
    if data.pack:
        return PackedChatIterator(examples, seq_len=seq_len, rows=rows, seed=seed, shuffle=data.shuffle,
                                  bins=data.packing_bins, pad_id=tok.pad_id, process_index=process_index,
                                  process_count=process_count)

    def make_batch(idx: np.ndarray) -> Batch:
        return chat.stack_rows([_example_row(examples[i], seq_len, tok.pad_id) for i in idx])

    return ExampleIterator(len(examples), make_batch, rows=rows, seed=seed, shuffle=data.shuffle,
                           process_index=process_index, process_count=process_count)


def _example_row(ex: dict, seq_len: int, pad_id: int) -> dict:
    ids = np.concatenate([ex["inputs"][:1], ex["targets"]])
    trained = np.concatenate([[False], ex["loss_mask"] > 0])
    return chat.lm_row(ids, trained, seq_len, pad_id)


def _require_data(exp: Experiment, kind: type) -> None:
    if not isinstance(exp.data, kind):
        raise ConfigError(f"loss {type(exp.loss).__name__} trains on {kind.__name__}, but experiment "
                          f"{exp.name!r} has data={type(exp.data).__name__}")


@register_task(SFT)
def sft_task(exp: Experiment) -> Task:
    """Chat SFT (code or general stage): masked next-token NLL on packed assistant-masked rows."""
    _require_data(exp, ChatData)
    return Task(init_params=lambda rng: M.init_params(exp.model, rng),
                loss_fn=next_token_loss(exp.model, model_forward(exp)),
                data_iterator=lambda **kw: sft_iterator(exp.data, seq_len=exp.batch.seq_len, seed=exp.seed, **kw))


# ------------------------------------------------------------------------------------------------------------
# Preference pairs (DPO / RPO / Bradley-Terry)
# ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PairTable:
    """Encoded pairs: per side a list of (ids, trained) and, when known, rewards [N]."""

    chosen: list[tuple[np.ndarray, np.ndarray]]
    rejected: list[tuple[np.ndarray, np.ndarray]]
    chosen_reward: Optional[np.ndarray]
    rejected_reward: Optional[np.ndarray]
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.chosen)


def read_pairs(paths: Sequence[str]) -> list[chat.PreferencePair]:
    return [p for path in paths for p in chat.read_preference_jsonl(path)]


def encode_pairs(tok: Any, pairs: Sequence[chat.PreferencePair], seq_len: int, *,
                 reward_input: bool = False) -> PairTable:
    """Encode each side (policy sequence, or reward-model input); drop pairs whose longer side exceeds seq_len."""
    enc = ((lambda p, r: (np.asarray(chat.encode_reward_input(tok, p, r), np.int32), None)) if reward_input
           else (lambda p, r: chat.encode_response(tok, p, r)))
    limit = seq_len if reward_input else seq_len + 1  # LM rows shift by one
    chosen, rejected, keep = [], [], []
    for i, pair in enumerate(pairs):
        c, r = enc(pair.prompt, pair.chosen), enc(pair.prompt, pair.rejected)
        if max(len(c[0]), len(r[0])) <= limit:
            chosen.append(c), rejected.append(r), keep.append(i)
    if not keep:
        raise ConfigError(f"every preference pair is longer than batch.seq_len={seq_len}; raise it")
    if len(keep) < len(pairs):
        log.warning("dropped %d of %d preference pairs longer than seq_len=%d", len(pairs) - len(keep), len(pairs),
                    seq_len)
    have = all(pairs[i].chosen_reward is not None for i in keep)
    rew = lambda side: np.asarray([getattr(pairs[i], side) for i in keep], np.float32) if have else None
    return PairTable(chosen, rejected, rew("chosen_reward"), rew("rejected_reward"), len(pairs) - len(keep))


def pair_batch(table: PairTable, idx: np.ndarray, seq_len: int, pad_id: int) -> Batch:
    """chosen_* / rejected_* LM rows (+ rewards [B]) for the pairs `idx`."""
    batch: Batch = {}
    for side in SIDES:
        rows = [chat.lm_row(*getattr(table, side)[i], seq_len, pad_id) for i in idx]
        batch.update(chat.stack_rows(rows, prefix=f"{side}_"))
        rewards = getattr(table, f"{side}_reward")
        if rewards is not None:
            batch[f"{side}_reward"] = rewards[idx]
    return batch


def _concat_sides(batch: Batch, key: str) -> jax.Array:
    return jnp.concatenate([batch[f"chosen_{key}"], batch[f"rejected_{key}"]], axis=0)


Forward = Callable[..., jax.Array]  # fwd(params, tokens, *, positions, segment_ids) -> fp32 logits


def plain_forward(cfg: ModelConfig) -> Forward:
    return lambda params, tokens, **kw: M.forward(params, tokens, cfg, **kw)


def pair_logps(params: Params, batch: Batch, forward: Forward) -> tuple[jax.Array, jax.Array]:
    """(summed response log-probs [2, B], trained-token counts [2, B]) with chosen and rejected in one forward."""
    logits = forward(params, _concat_sides(batch, "inputs"), positions=_concat_sides(batch, "positions"),
                     segment_ids=_concat_sides(batch, "segment_ids"))
    mask = _concat_sides(batch, "loss_mask").astype(jnp.float32)
    logps = jnp.sum(token_logps(logits, _concat_sides(batch, "targets")) * mask, axis=-1)
    b = batch["chosen_inputs"].shape[0]
    return logps.reshape(2, b), jnp.sum(mask, axis=-1).reshape(2, b)


def text_row_nll(params: Params, batch: Batch, forward: Forward) -> jax.Array:
    """Per-row mean next-token NLL of the batch's `text_*` rows: [B]."""
    logits = forward(params, batch["text_inputs"], positions=batch["text_positions"],
                     segment_ids=batch["text_segment_ids"])
    mask = batch["text_loss_mask"].astype(jnp.float32)
    nll = -jnp.sum(token_logps(logits, batch["text_targets"]) * mask, axis=-1)
    return nll / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)


def preference_loss_fn(cfg: ModelConfig, loss: DPO, ref_params: Optional[Params] = None,
                       forward: Optional[Forward] = None, *, text_replay_weight: float = 0.0) -> Callable:
    """loss_fn(params, batch) for DPO/RPO: Σ_pairs [preference loss + sft_weight · (−log π(y_c))
    + text_replay_weight · (per-token NLL of the pair's text row)], count = pairs.

    `forward` defaults to the plain model; pipelined layouts pass `train.tasks.model_forward(exp)`.
    """
    forward = forward or plain_forward(cfg)

    def loss_fn(params: Params, batch: Batch) -> tuple[jax.Array, dict]:
        (pc, pr), (nc, nr) = pair_logps(params, batch, forward)
        if "chosen_ref_logps" in batch:
            rc, rr = batch["chosen_ref_logps"], batch["rejected_ref_logps"]
        elif ref_params is not None:
            (rc, rr), _ = jax.lax.stop_gradient(pair_logps(ref_params, batch, forward))
        else:
            raise ValueError("preference batch has no chosen_ref_logps and no reference params were given")
        lc = response_logratio(pc, rc, nc, length_normalize=loss.length_normalize)
        lr = response_logratio(pr, rr, nr, length_normalize=loss.length_normalize)
        per_pair = preference_loss(loss.kind, lc, lr, beta=loss.beta, eta=loss.eta,
                                   reward_chosen=batch.get("chosen_reward"),
                                   reward_rejected=batch.get("rejected_reward"))
        sft = chosen_sft_term(pc, nc, length_normalize=loss.sft_length_normalize)
        total = jnp.sum(per_pair + loss.sft_weight * sft)
        aux = {"count": jnp.asarray(per_pair.shape[0], jnp.float32), "pref/loss": jnp.sum(per_pair),
               "pref/sft_nll": jnp.sum(sft), **preference_metrics(lc, lr, pc, pr, beta=loss.beta)}
        if text_replay_weight:
            text = text_row_nll(params, batch, forward)
            total = total + text_replay_weight * jnp.sum(text)
            aux["pref/text_nll"] = jnp.sum(text)
        return total, aux

    return loss_fn


# ---- reference log-probs: computed once and cached on disk ---------------------------------------------------


def reference_logps(ref_params: Params, cfg: ModelConfig, table: PairTable, *, seq_len: int, pad_id: int,
                    batch_size: int = 8, parallel: Optional[ParallelConfig] = None) -> np.ndarray:
    """Summed reference log-probs of every pair's chosen and rejected response: [N, 2] (fp32).

    With `parallel` (the run's layout) the reference runs sharded over the same mesh as the train step (tensor,
    pipeline, data; see `sharded_pair_logps`), so a reference as large as the policy fits; `batch_size` pairs go
    at a time (the step's rows: micro_batch x data-parallel size). Without it, one device.
    """
    if parallel is not None and layout_devices(parallel, jax.device_count()) > 1:
        fn = sharded_pair_logps(ref_params, cfg, parallel, batch_size, seq_len)
    else:
        jitted = jax.jit(lambda p, b: pair_logps(p, b, plain_forward(cfg))[0])
        fn = lambda b: jitted(ref_params, b)  # noqa: E731
    out = []
    for start in range(0, len(table), batch_size):
        idx = np.arange(start, min(start + batch_size, len(table)))
        padded = np.concatenate([idx, np.full(batch_size - len(idx), idx[-1])])  # one shape, one compile
        out.append(np.asarray(fn(pair_batch(table, padded, seq_len, pad_id))).T[:len(idx)])
    return np.concatenate(out).astype(np.float32)


def sharded_pair_logps(params: Params, cfg: ModelConfig, parallel: ParallelConfig, rows: int,
                       seq_len: int) -> Callable[[Batch], jax.Array]:
    """`fn(pair batch of `rows` pairs) -> [2, rows]` reference log-probs, run like the train step's forward
    (`parallel.training.sharded_apply`: chosen and rejected rows together, so 2 x rows forward rows)."""
    from nemotron_jax.parallel.mesh import axis_sizes
    from nemotron_jax.parallel.training import make_forward, sharded_apply

    forward = make_forward(cfg, parallel)
    sizes = axis_sizes(parallel, layout_devices(parallel, jax.device_count()))
    if rows % (sizes["data"] * sizes["fsdp"]):
        raise ConfigError(f"{rows} pairs per reference batch do not split over the {sizes['data'] * sizes['fsdp']} "
                          f"data-parallel replicas (data x fsdp); use a multiple of that")
    return sharded_apply(lambda p, b: pair_logps(p, b, forward)[0], params, cfg, parallel, rows=2 * rows,
                         seq_len=seq_len)


def _fingerprint(table: PairTable, ref_params: Params, cfg: ModelConfig, seq_len: int) -> str:
    """Hash of the encoded pairs, a digest of the reference weights (first element + |sum| per leaf) and the model
    shape: a new dataset, reference checkpoint or model gets a new cache file."""
    h = hashlib.sha256(json.dumps([dataclasses.asdict(cfg), seq_len]).encode())
    for side in SIDES:
        for ids, trained in getattr(table, side):
            h.update(ids.tobytes()), h.update(np.packbits(trained).tobytes())
    for leaf in jax.tree.leaves(ref_params):
        h.update(np.asarray(leaf[(0,) * leaf.ndim] if leaf.ndim else leaf, np.float32).tobytes())
        h.update(np.float32(jnp.sum(jnp.abs(leaf.astype(jnp.float32)))).tobytes())
    return h.hexdigest()[:16]


def cached_reference_logps(ref_params: Params, cfg: ModelConfig, table: PairTable, cache_dir: str | os.PathLike, *,
                           seq_len: int, pad_id: int, batch_size: int = 8,
                           parallel: Optional[ParallelConfig] = None) -> np.ndarray:
    """`reference_logps`, read from `<cache_dir>/ref_logps_<key>.npy` when present, else computed and written."""
    path = Path(cache_dir) / f"ref_logps_{_fingerprint(table, ref_params, cfg, seq_len)}.npy"
    if path.exists():
        return np.load(path)
    logps = reference_logps(ref_params, cfg, table, seq_len=seq_len, pad_id=pad_id, batch_size=batch_size,
                            parallel=parallel)
    if jax.process_index() == 0:  # every process computed the same numbers; one writes them
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, logps)
        os.replace(tmp, path)  # atomic: a crashed writer never leaves a half cache
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("reference log-probs written")
    return logps


# ---- rewards from a reward model -------------------------------------------------------------------------------


def read_params_on_layout(path: str | os.PathLike, cfg: ModelConfig, parallel: Optional[ParallelConfig] = None,
                          logical_axes: Optional[Callable[[Params], Params]] = None) -> Params:
    """`path`'s parameters (either folder kind). On a multi-device layout they are restored straight into its
    shardings (each process reads its own shards; no host or device ever holds a 340B model whole).
    `logical_axes(shapes)` names the axes of trees other than the LM's (the reward model's)."""
    if parallel is None or layout_devices(parallel, jax.device_count()) == 1:
        return read_params(path)
    from nemotron_jax.parallel.training import layout_target

    shapes = params_shapes(path)
    axes = logical_axes(shapes) if logical_axes else None
    return read_params(path, target=layout_target(shapes, cfg, parallel, param_logical_axes=axes))


def _reward_axes(cfg: ModelConfig) -> Callable[[Params], Params]:
    return lambda shapes: heads.reward_logical_axes(cfg, shapes["reward_head"]["bias"].shape[0])


def score_pairs(rm_params: Params, rm_cfg: ModelConfig, tok: Any, pairs: Sequence[chat.PreferencePair],
                weights: Optional[Sequence[float]] = None, *, parallel: Optional[ParallelConfig] = None,
                batch_size: int = 16) -> list[chat.PreferencePair]:
    """Fill chosen_reward / rejected_reward with the reward model's aggregated scores (RPO's r*); with `parallel`
    the reward model runs sharded on that layout's mesh (`batch_size` conversations at a time)."""
    prompts = [p.prompt for p in pairs]
    sc = heads.score_conversations(rm_params, rm_cfg, tok, prompts + prompts,
                                   [p.chosen for p in pairs] + [p.rejected for p in pairs], weights=weights,
                                   parallel=parallel, batch_size=batch_size)["reward"]
    n = len(pairs)
    return [dataclasses.replace(p, chosen_reward=float(sc[i]), rejected_reward=float(sc[n + i]))
            for i, p in enumerate(pairs)]


def _rm_config(path: str, fallback: ModelConfig) -> ModelConfig:
    f = Path(path) / "model_config.json"
    if f.exists():
        from nemotron_jax.checkpoint.params_io import load_model_config

        return load_model_config(path)
    return fallback


def preference_pairs(exp: Experiment, tok: Any) -> list[chat.PreferencePair]:
    """The data's pairs; those without rewards are scored by `data.reward_model` when the loss needs rewards."""
    data: PreferenceData = exp.data
    pairs = read_pairs(data.paths)
    needs = isinstance(exp.loss, DPO) and exp.loss.kind in REWARD_KINDS
    missing = [i for i, p in enumerate(pairs) if p.chosen_reward is None]
    if needs and missing:
        if not data.reward_model:
            raise ConfigError(f"loss kind {exp.loss.kind!r} needs rewards: {len(missing)} pairs in {data.paths} have "
                              f"no chosen_reward/rejected_reward; add them or set data.reward_model")
        rm_cfg = _rm_config(data.reward_model, exp.model)
        rm_params = read_params_on_layout(data.reward_model, rm_cfg, exp.parallel, _reward_axes(rm_cfg))
        scored = score_pairs(rm_params, rm_cfg, tok, [pairs[i] for i in missing], data.reward_weights,
                             parallel=exp.parallel, batch_size=_step_rows(exp))
        for i, p in zip(missing, scored):
            pairs[i] = p
    return pairs


def reference_params(exp: Experiment, *, on_layout: bool = True) -> Params:
    """The frozen reference: the run's starting point (init_from), else the same fresh init the loop makes.

    `on_layout`: placed on the run's layout, for the cached (sharded) reference pass. The in-step reference is a
    whole copy per process instead: the step closes over it, and a closed-over array spread over several hosts
    cannot become a program constant.
    """
    if exp.init_from:
        if on_layout:
            return read_params_on_layout(exp.init_from, exp.model, exp.parallel)
        return read_params(exp.init_from)
    init = lambda: M.init_params(exp.model, jax.random.key(exp.seed))  # noqa: E731
    if on_layout and layout_devices(exp.parallel, jax.device_count()) > 1:
        from nemotron_jax.parallel.training import layout_shardings

        return jax.jit(init, out_shardings=layout_shardings(exp.model, exp.parallel)[1])()
    return init()


def _pair_iterator(table: PairTable, exp: Experiment, pad_id: int, extra: Optional[dict] = None,
                   make: Optional[Callable] = None) -> Callable[..., ExampleIterator]:
    seq_len = exp.batch.seq_len
    make = make or (lambda idx: pair_batch(table, idx, seq_len, pad_id))

    def make_batch(idx: np.ndarray) -> Batch:
        batch = make(idx)
        batch.update({k: v[idx] for k, v in (extra or {}).items()})
        return batch

    return lambda **kw: ExampleIterator(len(table), make_batch, seed=exp.seed, shuffle=exp.data.shuffle, **kw)


class WithTextRows:
    """A pair iterator whose every batch also carries as many `text_*` LM rows (packed replay documents)."""

    def __init__(self, pairs: Any, text: PackedChatIterator) -> None:
        self.pairs, self.text = pairs, text

    def __iter__(self) -> "WithTextRows":
        return self

    def __next__(self) -> Batch:
        return {**next(self.pairs), **{"text_" + k: v for k, v in next(self.text).items()}}

    def get_state(self) -> dict:
        return {"pairs": self.pairs.get_state(), "text": self.text.get_state()}

    def set_state(self, state: dict) -> None:
        self.pairs.set_state(state["pairs"])
        self.text.set_state(state["text"])


def _with_text_replay(make_pairs: Callable[..., Any], data: PreferenceData, tok: Any, *, seq_len: int,
                      seed: int) -> Callable[..., Any]:
    """`make_pairs`, plus one packed row of `data.text_replay_paths` documents per pair row when replay is on."""
    if not data.text_replay_weight:
        return make_pairs
    docs = replay_documents(data)
    examples = [lm_example(tok.encode(d, bos=True, eos=True)) for d in docs]

    def make(*, rows: int, process_index: int = 0, process_count: int = 1) -> WithTextRows:
        text = PackedChatIterator(examples, seq_len=seq_len, rows=rows, seed=seed + 1, shuffle=True, bins=8,
                                  pad_id=tok.pad_id, process_index=process_index, process_count=process_count)
        return WithTextRows(make_pairs(rows=rows, process_index=process_index, process_count=process_count), text)

    return make


ON_THE_FLY_MAX_BYTES = 1 << 30  # in-step reference weights are constants of the compiled step: small models only


def _check_on_the_fly_size(exp: Experiment) -> None:
    """reference="on_the_fly" closes the step over the reference weights, which XLA then embeds in the program
    (unsharded); past ~1 GiB that is a compile-time and memory failure, so say so before loading anything."""
    if exp.loss.reference != "on_the_fly":
        return
    shapes = jax.eval_shape(lambda: M.init_params(exp.model, jax.random.key(0)))
    size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes))
    if size > ON_THE_FLY_MAX_BYTES:
        raise ConfigError(f"reference='on_the_fly' would embed the {size / 2**30:.1f} GiB reference model in the "
                          f"compiled step; it is meant for small models. Use reference='cached': the reference "
                          f"log-probs are computed once, sharded like the step, and stored on disk.")


def _step_rows(exp: Experiment) -> int:
    """Rows of one accumulation microbatch of the run's step (micro_batch x data-parallel size)."""
    from nemotron_jax.parallel.mesh import axis_sizes

    sizes = axis_sizes(exp.parallel, layout_devices(exp.parallel, jax.device_count()))
    return exp.batch.micro_batch * sizes["data"] * sizes["fsdp"]


@register_task(DPO)
@register_task(RPO)
def preference_task(exp: Experiment) -> Task:
    """DPO/RPO from the init_from policy, referencing it; reference log-probs cached on disk or run in-step."""
    _require_data(exp, PreferenceData)
    loss: DPO = exp.loss
    if getattr(loss, "iterations", 1) > 1:  # one loop run is one iteration; never silently run fewer
        raise ConfigError(f"RPO(iterations={loss.iterations}) is several runs: start it with "
                          f"`nemotron-jax train` (train.cli.run_experiment) or train.alignment.run_rpo(exp), "
                          f"or set loss.iterations=1 for a single iteration")
    _check_on_the_fly_size(exp)
    tok = load_tokenizer(exp.data.tokenizer)
    table = encode_pairs(tok, preference_pairs(exp, tok), exp.batch.seq_len)
    ref = reference_params(exp, on_layout=loss.reference == "cached")
    extra, loss_ref = None, ref
    if loss.reference == "cached":
        cache = loss.ref_cache_dir or os.path.join(exp.out_dir, "reference_logps")
        logps = cached_reference_logps(ref, exp.model, table, cache, seq_len=exp.batch.seq_len, pad_id=tok.pad_id,
                                       batch_size=_step_rows(exp), parallel=exp.parallel)
        extra, loss_ref = {"chosen_ref_logps": logps[:, 0], "rejected_ref_logps": logps[:, 1]}, None
    return Task(init_params=lambda rng: M.init_params(exp.model, rng),
                loss_fn=preference_loss_fn(exp.model, loss, loss_ref, model_forward(exp),
                                           text_replay_weight=exp.data.text_replay_weight),
                data_iterator=_with_text_replay(_pair_iterator(table, exp, tok.pad_id, extra), exp.data, tok,
                                                seq_len=exp.batch.seq_len, seed=exp.seed))


def run_rpo(exp: Experiment, **run_kw: Any) -> list[Any]:
    """`loss.iterations` runs in `<out_dir>/iter{i}`: iteration i starts from and references iteration i−1's result
    (iteration 1: `exp.init_from`, the DPO model). Returns each iteration's RunResult."""
    from nemotron_jax.train.loop import run

    if not isinstance(exp.loss, DPO):
        raise ConfigError(f"run_rpo needs a DPO/RPO loss, got {type(exp.loss).__name__}")
    results, start = [], exp.init_from
    iterations = getattr(exp.loss, "iterations", 1)
    for i in range(1, iterations + 1):
        run_dir = os.path.join(exp.out_dir, f"iter{i}")
        loss = dataclasses.replace(exp.loss, ref_cache_dir=None, **({"iterations": 1} if iterations > 1 else {}))
        step_exp = exp.replace(name=f"{exp.name}-iter{i}", run_dir=run_dir, init_from=start, loss=loss)
        results.append(run(step_exp, **run_kw))
        start = run_dir
    return results


# ------------------------------------------------------------------------------------------------------------
# Reward models
# ------------------------------------------------------------------------------------------------------------


def reward_init(exp: Experiment, num_attributes: int) -> Callable[[jax.Array], Params]:
    """A fresh reward model: random trunk + head (also the tree's shapes when the run starts from an LM)."""
    return lambda rng: heads.init_reward_params(exp.model, rng, num_attributes)


def reward_start(exp: Experiment, num_attributes: int,
                 lm_init_from: Optional[str]) -> Optional[Callable[[jax.Array, Params], Params]]:
    """`Task.start_params` for a reward model initialised from an LM: the checkpoint's trunk, read outside any jit
    straight into the training state's layout and dtype (`target`), plus a new head. None without an LM."""
    if not lm_init_from:
        return None

    def start(rng: jax.Array, target: Params) -> Params:
        shapes = params_shapes(lm_init_from)  # the LM's tree: the trunk, and an lm_head that is read and dropped
        if layout_devices(exp.parallel, jax.device_count()) > 1:
            from nemotron_jax.parallel.training import layout_target

            lm_target = layout_target(shapes, exp.model, exp.parallel)
        else:
            device = jax.tree.leaves(target)[0].sharding
            lm_target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), shapes)
        lm_target.update({k: target[k] for k in heads.TRUNK_KEYS})
        lm = read_params(lm_init_from, target=lm_target)
        return heads.reward_params_from_lm(lm, exp.model, rng, num_attributes)

    return start


def reward_row(ids: np.ndarray, seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """One unpacked reward-model row: tokens right-padded, segment 1 on real tokens (the head reads the last)."""
    n = len(ids)
    row = {"inputs": np.full(seq_len, pad_id, np.int32), "positions": np.zeros(seq_len, np.int32),
           "segment_ids": np.zeros(seq_len, np.int32)}
    row["inputs"][:n], row["positions"][:n], row["segment_ids"][:n] = ids, np.arange(n), 1
    return row


def hidden_forward(exp: Experiment) -> Optional[Callable]:
    """The pipelined trunk for pipeline > 1 layouts, else None (the reward model's plain trunk)."""
    if exp.parallel.pipeline > 1:
        from nemotron_jax.parallel.training import make_forward_hidden

        return make_forward_hidden(exp.model, exp.parallel)
    return None


def regression_loss_fn(cfg: ModelConfig, hidden_fn: Optional[Callable] = None) -> Callable:
    """loss_fn for HelpSteer rows: Σ squared error over present labels, count = number of present labels."""

    def loss_fn(params: Params, batch: Batch) -> tuple[jax.Array, dict]:
        attrs, _ = heads.reward_forward(params, batch["inputs"], cfg, positions=batch["positions"],
                                        segment_ids=batch["segment_ids"], hidden_fn=hidden_fn)
        sq = regression_loss(attrs[:, 0], batch["labels"])
        return jnp.sum(sq), {"count": jnp.sum(label_mask(batch["labels"])), "rm/mse": jnp.sum(sq)}

    return loss_fn


@register_task(RewardRegression)
def reward_regression_task(exp: Experiment) -> Task:
    """HelpSteer-style multi-attribute regression (SPEC §3)."""
    _require_data(exp, HelpSteerData)
    loss: RewardRegression = exp.loss
    if len(exp.data.attributes) != loss.num_attributes:
        raise ConfigError(f"data has {len(exp.data.attributes)} attributes {exp.data.attributes} but "
                          f"loss.num_attributes={loss.num_attributes}")
    tok = load_tokenizer(exp.data.tokenizer)
    rated = [r for p in exp.data.paths for r in chat.read_helpsteer_jsonl(p, exp.data.attributes)]
    ids = [np.asarray(chat.encode_reward_input(tok, r.prompt, r.response), np.int32) for r in rated]
    keep = [i for i, x in enumerate(ids) if len(x) <= exp.batch.seq_len]
    if not keep:
        raise ConfigError(f"every HelpSteer row is longer than batch.seq_len={exp.batch.seq_len}")
    if len(keep) < len(ids):
        log.warning("dropped %d of %d HelpSteer rows longer than seq_len=%d", len(ids) - len(keep), len(ids),
                    exp.batch.seq_len)
    labels = np.asarray([rated[i].labels for i in keep], np.float32)
    ids = [ids[i] for i in keep]

    def make_batch(idx: np.ndarray) -> Batch:
        batch = chat.stack_rows([reward_row(ids[i], exp.batch.seq_len, tok.pad_id) for i in idx])
        return {**batch, "labels": labels[idx]}

    return Task(init_params=reward_init(exp, loss.num_attributes),
                start_params=reward_start(exp, loss.num_attributes, loss.lm_init_from),
                logical_axes=lambda: heads.reward_logical_axes(exp.model, loss.num_attributes),
                loss_fn=regression_loss_fn(exp.model, hidden_forward(exp)),
                data_iterator=lambda **kw: ExampleIterator(len(ids), make_batch, seed=exp.seed,
                                                           shuffle=exp.data.shuffle, **kw))


def bt_loss_fn(cfg: ModelConfig, loss: BradleyTerry, hidden_fn: Optional[Callable] = None) -> Callable:
    """loss_fn for pairs of reward inputs: Bradley-Terry on the scalar rewards, count = pairs."""

    def loss_fn(params: Params, batch: Batch) -> tuple[jax.Array, dict]:
        attrs, _ = heads.reward_forward(params, _concat_sides(batch, "inputs"), cfg,
                                        positions=_concat_sides(batch, "positions"),
                                        segment_ids=_concat_sides(batch, "segment_ids"), hidden_fn=hidden_fn)
        r = heads.scalar_reward(attrs[:, 0], loss.weights).reshape(2, -1)
        margin = batch.get("margin") if loss.margin_mode else None
        per = bradley_terry_loss(r[0], r[1], margin=margin, margin_mode=loss.margin_mode or "subtract")
        aux = {"count": jnp.asarray(per.shape[0], jnp.float32),
               "rm/accuracy": jnp.sum((r[0] > r[1]).astype(jnp.float32)),
               "rm/margin": jnp.sum(r[0] - r[1])}
        return jnp.sum(per), aux

    return loss_fn


@register_task(BradleyTerry)
def bradley_terry_task(exp: Experiment) -> Task:
    """Pairwise reward model on preference pairs; margin m = chosen_reward − rejected_reward when configured."""
    _require_data(exp, PreferenceData)
    loss: BradleyTerry = exp.loss
    tok = load_tokenizer(exp.data.tokenizer)
    table = encode_pairs(tok, read_pairs(exp.data.paths), exp.batch.seq_len, reward_input=True)
    if loss.margin_mode and table.chosen_reward is None:
        raise ConfigError(f"BradleyTerry(margin_mode={loss.margin_mode!r}) needs chosen_reward/rejected_reward "
                          f"in every pair of {exp.data.paths}")
    seq_len = exp.batch.seq_len

    def make(idx: np.ndarray) -> Batch:
        batch: Batch = {}
        for side in SIDES:
            rows = [reward_row(getattr(table, side)[i][0], seq_len, tok.pad_id) for i in idx]
            batch.update(chat.stack_rows(rows, prefix=f"{side}_"))
        if loss.margin_mode:
            batch["margin"] = table.chosen_reward[idx] - table.rejected_reward[idx]
        return batch

    return Task(init_params=reward_init(exp, loss.num_attributes),
                start_params=reward_start(exp, loss.num_attributes, loss.lm_init_from),
                logical_axes=lambda: heads.reward_logical_axes(exp.model, loss.num_attributes),
                loss_fn=bt_loss_fn(exp.model, loss, hidden_forward(exp)),
                data_iterator=_pair_iterator(table, exp, tok.pad_id, make=make))
