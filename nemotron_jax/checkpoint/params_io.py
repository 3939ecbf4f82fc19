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


def load_params(path: str | os.PathLike) -> tuple[ModelConfig, Params]:
    """(ModelConfig, params as host numpy arrays) from a folder written by `save_params`."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    cfg = load_model_config(path)
    with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(path / "params")
    return cfg, jax.tree.map(np.asarray, params)
