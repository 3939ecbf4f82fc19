"""Parameters-only checkpoints: `<dir>/params` (orbax PyTree) beside `<dir>/model_config.json`.

This is what conversion tools write and what serving/eval read when they need just the weights of a model.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nemotron_jax.config import ModelConfig

Params = dict[str, Any]


def save_model_config(path: str | os.PathLike, cfg: ModelConfig) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    (Path(path) / "model_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))


def load_model_config(path: str | os.PathLike) -> ModelConfig:
    f = Path(path) / "model_config.json"
    if not f.exists():
        raise FileNotFoundError(f"{path}: no model_config.json (not a nemotron_jax checkpoint folder)")
    return ModelConfig(**json.loads(f.read_text()))


def save_params(path: str | os.PathLike, params: Params, cfg: ModelConfig) -> Path:
    """Write params (blocking) and the model config; overwrites an existing params folder."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    save_model_config(path, cfg)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path / "params", jax.tree.map(np.asarray, params), force=True)
    return path


def load_params(path: str | os.PathLike, target: Any = None) -> tuple[ModelConfig, Params]:
    """(ModelConfig, params) from a folder written by `save_params`: host numpy arrays, or, with `target` (a tree
    of ShapeDtypeStructs with shardings), arrays restored straight into those shardings (each process reads only
    its own shards: the way to load a model too large for one host or device)."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    cfg = load_model_config(path)
    with ocp.StandardCheckpointer() as ckptr:
        if target is not None:
            return cfg, ckptr.restore(path / "params", target)
        params = ckptr.restore(path / "params")
    return cfg, jax.tree.map(np.asarray, params)


def read_params(path: str | os.PathLike, target: Any = None) -> Params:
    """Parameters from either kind of folder: a params-only folder (model_config.json beside params) or a training
    run / checkpoint directory (its newest step, or the step folder given). `target` as in `load_params`; without
    it, a training checkpoint comes back on the first device and a params folder as host arrays."""
    if (Path(path) / "model_config.json").exists():
        return load_params(path, target)[1]
    from nemotron_jax.checkpoint.manager import load_params as load_checkpoint

    return load_checkpoint(path, target=target)


def params_shapes(path: str | os.PathLike) -> Params:
    """ShapeDtypeStructs of the parameters in either kind of folder (`read_params`), from metadata alone."""
    import orbax.checkpoint as ocp

    from nemotron_jax.checkpoint.manager import Checkpointer, shape_tree, split_step_dir

    if (Path(path) / "model_config.json").exists():
        with ocp.StandardCheckpointer() as ckptr:
            return shape_tree(ckptr.metadata(Path(path).absolute() / "params"))
    root, step = split_step_dir(path)
    with Checkpointer(root, read_only=True) as ckpt:
        return ckpt.params_shapes(step)
