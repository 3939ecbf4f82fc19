"""Training checkpoints with orbax: async save, keep-N, save on SIGTERM, exact resume, restore onto another mesh.

One checkpoint is a folder `<dir>/<step>/` holding four items:

    params   the fp32 master parameters (its own item, so eval/inference read it without the optimizer)
    train    {"opt_state", "step", "nonfinite_in_a_row", "nonfinite_total"} -- the rest of the TrainState
    data     every process's data-iterator state (JSON, `iterator.get_state()`), so a resumed run sees the next batch
    meta     JSON: consumed samples/tokens (the ramp position), the experiment name, anything else the loop adds

The LR schedule position is the optimizer's own update count inside `opt_state`, so it resumes with it.
Restore takes an abstract target (ShapeDtypeStructs with shardings): the arrays are laid out for *that* mesh, which
is how a checkpoint written on one device count is read on another.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from nemotron_jax.train.state import TrainState

Params = Any
_TRAIN_FIELDS = ("opt_state", "step", "nonfinite_in_a_row", "nonfinite_total")


def _train_part(state: TrainState) -> dict:
    return {f: getattr(state, f) for f in _TRAIN_FIELDS}


def shape_tree(meta: Any) -> Any:
    """orbax array metadata (a tree, or an object holding one) -> a tree of jax.ShapeDtypeStruct."""
    for attr in ("item_metadata", "tree"):
        meta = getattr(meta, attr, meta)
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), meta,
                        is_leaf=lambda m: hasattr(m, "shape") and hasattr(m, "dtype"))


def _abstract(tree: Any) -> Any:
    """ShapeDtypeStructs (keeping shardings) for a tree of arrays or ShapeDtypeStructs."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=getattr(a, "sharding", None)), tree)


class Checkpointer:
    """An orbax CheckpointManager for TrainStates plus the loop's JSON side-cars."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, async_save: bool = True,
                 read_only: bool = False) -> None:
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                               create=not read_only, read_only=read_only)
        # handlers named up front, so a fresh (e.g. read-only) manager can read item metadata before any restore
        handlers = dict(params=ocp.StandardCheckpointHandler(), train=ocp.StandardCheckpointHandler(),
                        data=ocp.JsonCheckpointHandler(), meta=ocp.JsonCheckpointHandler())
        self._mgr = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def latest_step(self) -> Optional[int]:
        return self._mgr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mgr.all_steps())

    def save(self, step: int, state: TrainState, *, data_state: Optional[dict] = None,
             meta: Optional[dict] = None) -> None:
        """Start writing checkpoint `step` (returns once arrays are copied off the devices when async).

        `data_state` is this process's iterator state; every process calls save, and all their states are kept.
        """
        per_process = _gather_json(data_state or {})
        items = dict(params=ocp.args.StandardSave(state.params), train=ocp.args.StandardSave(_train_part(state)),
                     data=ocp.args.JsonSave({"per_process": per_process}), meta=ocp.args.JsonSave(meta or {}))
        self._mgr.save(step, args=ocp.args.Composite(**items), force=True)

    def wait(self) -> None:
        """Block until every pending async save is on disk."""
        self._mgr.wait_until_finished()

    def restore(self, target: TrainState, step: Optional[int] = None) -> tuple[TrainState, dict, dict]:
        """(state, data_state, meta) of `step` (default newest), laid out like `target` (arrays or abstract)."""
        step = self._require_step(step)
        abstract = _abstract(target)
        items = dict(params=ocp.args.StandardRestore(abstract.params),
                     train=ocp.args.StandardRestore(_train_part(abstract)),
                     data=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore())
        got = self._mgr.restore(step, args=ocp.args.Composite(**items))
        state = target.replace(params=got.params, **got.train)
        return state, _own_data_state(dict(got.data or {}), step), dict(got.meta or {})

    def restore_params(self, step: Optional[int] = None, target: Any = None) -> Params:
        """Just the parameters of `step`, laid out like `target` (default: every array on the first device)."""
        step = self._require_step(step)
        if target is None:
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                                  self.params_shapes(step))
        got = self._mgr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(_abstract(target))))
        return got.params

    def params_shapes(self, step: Optional[int] = None) -> Params:
        """ShapeDtypeStructs of `step`'s parameters, read from the checkpoint's metadata (no array is loaded)."""
        return shape_tree(self._mgr.item_metadata(self._require_step(step))["params"])

    def _require_step(self, step: Optional[int]) -> int:
        step = self.latest_step() if step is None else step
        if step is None or step not in self.all_steps():
            raise FileNotFoundError(f"no checkpoint {'' if step is None else step} in {self.directory} "
                                    f"(steps there: {self.all_steps() or 'none'})")
        return step

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _gather_json(obj: dict) -> list[dict]:
    """Every process's `obj`, in process order (orbax writes JSON items from the primary process only)."""
    if jax.process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils

    raw = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    longest = int(np.max(multihost_utils.process_allgather(np.array([raw.size]))))
    padded = np.zeros(longest, np.uint8)
    padded[:raw.size] = raw
    rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(jax.process_count(), longest)
    return [json.loads(bytes(row).rstrip(b"\0").decode()) for row in rows]


def _own_data_state(saved: dict, step: int) -> dict:
    """This process's entry of a saved per-process data state."""
    entries = saved.get("per_process", [saved])
    if len(entries) != jax.process_count():
        raise ValueError(f"checkpoint {step} holds data-iterator states of {len(entries)} processes but this run has "
                         f"{jax.process_count()}; resume with the same process count (or start the data afresh)")
    return entries[jax.process_index()]


def split_step_dir(path: str | os.PathLike) -> tuple[Path, Optional[int]]:
    """'runs/x/checkpoints/400' -> (runs/x/checkpoints, 400); 'runs/x/checkpoints' -> (that, None)."""
    path = Path(path)
    if path.name.isdigit() and (path / "params").exists():
        return path.parent, int(path.name)
    if (path / "checkpoints").is_dir():  # a run folder
        return path / "checkpoints", None
    return path, None


def load_params(directory: str | os.PathLike, step: Optional[int] = None, *, target: Any = None) -> Params:
    """Parameters of a training checkpoint (run dir, checkpoints dir, or a step folder), for inference and eval."""
    root, from_path = split_step_dir(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{directory}: no such checkpoint folder")
    with Checkpointer(root, read_only=True) as ckpt:
        return ckpt.restore_params(step if step is not None else from_path, target)


class PreemptionFlag:
    """Set by SIGTERM (and SIGUSR1, which SLURM can send ahead of a kill); the loop checks it after each step."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR1)) -> None:
        self._event = threading.Event()
        self._signals = signals
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "PreemptionFlag":
        if threading.current_thread() is threading.main_thread():  # handlers can only be installed there
            for sig in self._signals:
                self._previous[sig] = signal.signal(sig, lambda *_: self._event.set())
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        """True once a signal arrived; on several processes, true when any of them got one."""
        flag = self._event.is_set()
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            flag = bool(np.any(multihost_utils.process_allgather(np.array(flag))))
        return flag
