"""Tasks: what the one training loop trains. A task makes the parameters, the loss_fn and the data iterator.

The extension point (how SFT, DPO, RPO and the reward model plug into `train.loop.run`):

    @register_task(MyLossConfig)              # the type of `Experiment.loss` selects the task
    def my_task(exp: Experiment) -> Task:     # build whatever the task needs (reference model, tokenizer, ...)
        return Task(init_params=..., loss_fn=..., data_iterator=...)

    init_params(rng) -> params                 fresh parameters (ignored when the run resumes or has init_from)
    logical_axes() -> tree of logical names    optional: only for parameter trees other than the LM's (reward model)
    loss_fn(params, microbatch) -> (loss_sum, aux)   aux["count"] the normaliser, every entry a SUM (train/step.py)
    data_iterator(rows, process_index, process_count) -> DataIterator
        yields dicts of numpy arrays with leading axis `rows` (this process's share of one accumulation microbatch);
        has get_state() -> JSON-able dict and set_state(dict), so checkpoints resume on exactly the next batch.

Pretraining (`NextTokenLoss`) is the first task: masked next-token NLL over the LM batch contract
(`inputs`, `targets`, `loss_mask`, `positions`, `segment_ids`). Its data comes from a builder registered for the
type of `Experiment.data` with `register_data`; data modules register theirs on import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import jax
import numpy as np

from nemotron_jax import model as M
from nemotron_jax.config import ConfigError, Experiment, NextTokenLoss, TextData
from nemotron_jax.losses.common import masked_nll
from nemotron_jax.train.step import LossFn

Params = Any
Batch = dict[str, np.ndarray]


class DataIterator(Protocol):
    def __iter__(self) -> Iterator[Batch]: ...

    def __next__(self) -> Batch: ...

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...


@dataclass(frozen=True)
class Task:
    """The three things the loop needs from a training task."""

    init_params: Callable[[jax.Array], Params]
    loss_fn: LossFn
    data_iterator: Callable[..., DataIterator]
    # Logical axis names of the task's parameter tree, for sharded runs; None = the LM's (model.logical_axes).
    logical_axes: Callable[[], Params] | None = None
    # Starting weights built from a checkpoint (e.g. a reward model from an LM's trunk), for a fresh run without
    # exp.init_from: `start_params(rng, target)` returns them, read into `target` (the training state's abstract
    # params: shapes, dtypes, shardings). `init_params` then only has to give the tree's shapes: weights closed
    # over inside a jitted init would become program constants.
    start_params: Callable[[jax.Array, Params], Params] | None = None


TASKS: dict[type, Callable[[Experiment], Task]] = {}
DATA_BUILDERS: dict[type, Callable[..., DataIterator]] = {}
# Modules imported before a lookup so that their register_* decorators have run.
PLUGIN_MODULES = ("nemotron_jax.data.pipelines", "nemotron_jax.data.toyworld", "nemotron_jax.train.alignment")


def register_task(loss_type: type) -> Callable:
    """Decorator: `factory(exp) -> Task` trains experiments whose `loss` is a `loss_type`."""

    def wrap(factory: Callable[[Experiment], Task]) -> Callable[[Experiment], Task]:
        TASKS[loss_type] = factory
        return factory

    return wrap


def register_data(data_type: type) -> Callable:
    """Decorator: `builder(cfg, *, seq_len, rows, seed, process_index, process_count) -> DataIterator` of LM batches."""

    def wrap(builder: Callable[..., DataIterator]) -> Callable[..., DataIterator]:
        DATA_BUILDERS[data_type] = builder
        return builder

    return wrap


def _import_plugins() -> None:
    for name in PLUGIN_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):  # a missing plugin is fine; a broken one is not
                raise


def _lookup(table: dict[type, Callable], obj: Any, what: str) -> Callable:
    for cls in type(obj).__mro__:
        if cls in table:
            return table[cls]
    _import_plugins()
    for cls in type(obj).__mro__:
        if cls in table:
            return table[cls]
    raise ConfigError(f"no {what} is registered for {type(obj).__name__}; known: "
                      f"{sorted(c.__name__ for c in table)}. Register one with register_{what}({type(obj).__name__})")


def make_task(exp: Experiment) -> Task:
    """The task `exp.loss` selects."""
    return _lookup(TASKS, exp.loss, "task")(exp)


def lm_data_iterator(exp: Experiment, *, rows: int, process_index: int = 0, process_count: int = 1) -> DataIterator:
    """The LM-batch iterator registered for the type of `exp.data`."""
    builder = _lookup(DATA_BUILDERS, exp.data, "data")
    return builder(exp.data, seq_len=exp.batch.seq_len, rows=rows, seed=exp.seed, process_index=process_index,
                   process_count=process_count)


def model_forward(exp: Experiment) -> Callable[..., jax.Array]:
    """`fwd(params, tokens, *, positions, segment_ids) -> logits` for exp's layout (pipelined when pipeline > 1)."""
    if exp.parallel.pipeline > 1:
        from nemotron_jax.parallel.training import make_forward

        return make_forward(exp.model, exp.parallel)
    return lambda params, tokens, **kw: M.forward(params, tokens, exp.model, **kw)


def next_token_loss(model_cfg: Any, forward: Callable[..., jax.Array] | None = None) -> LossFn:
    """(sum of masked next-token NLL, {"count": target tokens}) for one LM microbatch."""
    forward = forward or (lambda params, tokens, **kw: M.forward(params, tokens, model_cfg, **kw))

    def loss_fn(params: Params, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        logits = forward(params, batch["inputs"], positions=batch["positions"], segment_ids=batch["segment_ids"])
        nll, count = masked_nll(logits, batch["targets"], batch["loss_mask"])
        return nll, {"count": count}

    return loss_fn


@register_task(NextTokenLoss)
def pretrain_task(exp: Experiment) -> Task:
    """Pretraining and continued pretraining: next-token NLL on packed LM batches."""
    if isinstance(exp.data, TextData) and exp.data.tokenizer and Path(exp.data.tokenizer).exists():
        from nemotron_jax.data.tokenizer import load_tokenizer

        vocab = load_tokenizer(exp.data.tokenizer).vocab_size
        if vocab > exp.model.vocab_size:
            raise ConfigError(f"tokenizer {exp.data.tokenizer} has {vocab} pieces but model.vocab_size="
                              f"{exp.model.vocab_size}; set model.vocab_size >= {vocab} or use a smaller tokenizer")
    return Task(init_params=lambda rng: M.init_params(exp.model, rng),
                loss_fn=next_token_loss(exp.model, model_forward(exp)),
                data_iterator=lambda **kw: lm_data_iterator(exp, **kw))


@register_data(TextData)
def text_data_iterator(cfg: TextData, *, seq_len: int, rows: int, seed: int, process_index: int = 0,
                       process_count: int = 1) -> DataIterator:
    """The data engineer's grain pipeline (data/pipelines.py); its stream seed is `TextData.seed`."""
    del seed  # the data stream has its own seed, so changing the init seed does not change the data
    from nemotron_jax.data.pipelines import make_lm_iterator
    from nemotron_jax.data.tokenizer import load_tokenizer

    return make_lm_iterator(cfg, load_tokenizer(cfg.tokenizer), batch_size=rows, seq_len=seq_len,
                            shard_index=process_index, shard_count=process_count)


# ----------------------------------------------------------------------------------------------------------------
# An in-memory LM source: fixed token rows, shuffled per epoch. Tests and quick experiments use it.
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRows:
    """LM data from an .npy file of token rows [N, seq_len + 1] (one document per row, no packing)."""

    path: str
    shuffle: bool = True


class RowIterator:
    """LM batches from token rows [N, T + 1]: epoch-wise seeded shuffle, strided over processes, checkpointable."""

    def __init__(self, rows_array: np.ndarray, *, rows: int, seed: int, shuffle: bool = True, process_index: int = 0,
                 process_count: int = 1) -> None:
        if rows_array.ndim != 2 or rows_array.shape[0] < rows * process_count:
            raise ValueError(f"token rows {rows_array.shape} cannot fill batches of {rows} x {process_count} rows")
        self.data, self.rows, self.seed, self.shuffle = rows_array.astype(np.int32), rows, seed, shuffle
        self.process_index, self.process_count = process_index, process_count
        self.epoch, self.index = 0, 0  # index: global rows consumed in this epoch

    def _order(self) -> np.ndarray:
        n = len(self.data)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)

    def __iter__(self) -> "RowIterator":
        return self

    def __next__(self) -> Batch:
        per_step = self.rows * self.process_count
        if self.index + per_step > len(self.data):
            self.epoch, self.index = self.epoch + 1, 0
        picked = self._order()[self.index:self.index + per_step][self.process_index::self.process_count]
        self.index += per_step
        tokens = self.data[picked]
        t = tokens.shape[1] - 1
        return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "loss_mask": np.ones((len(picked), t), np.float32),
                "positions": np.broadcast_to(np.arange(t, dtype=np.int32), (len(picked), t)).copy(),
                "segment_ids": np.ones((len(picked), t), np.int32)}

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def set_state(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])


@register_data(TokenRows)
def token_rows_iterator(cfg: TokenRows, *, seq_len: int, rows: int, seed: int, process_index: int = 0,
                        process_count: int = 1) -> RowIterator:
    """A RowIterator over `cfg.path`, checked against the experiment's seq_len."""
    data = np.load(cfg.path)
    if data.ndim != 2 or data.shape[1] != seq_len + 1:
        raise ConfigError(f"{cfg.path}: token rows have shape {data.shape}; expected [N, batch.seq_len + 1 = "
                          f"{seq_len + 1}]")
    return RowIterator(data, rows=rows, seed=seed, shuffle=cfg.shuffle, process_index=process_index,
                       process_count=process_count)
