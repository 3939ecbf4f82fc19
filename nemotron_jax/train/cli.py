"""`nemotron-jax train EXPERIMENT.py [dotted.key=value ...]`: load the file's CONFIG, apply overrides, run it.

    nemotron-jax train experiments/toy/pretrain.py steps=50 optim.lr=3e-3 batch.ramp=None run_dir=/tmp/x

An experiment file may define `prepare(config)`, called before training (e.g. to train its tokenizer).
Values are converted to the type of the field they replace (int, float, bool, str, None, or a Python literal for
tuples); an unknown key fails with the keys that exist at that level.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import sys
import typing
from pathlib import Path
from typing import Any, Optional, Sequence

from nemotron_jax.config import ConfigError


def load_experiment_module(path: str | Path) -> Any:
    """An experiment file imported as a module (its `__main__` block does not run); it must define CONFIG."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such experiment file")
    spec = importlib.util.spec_from_file_location(f"_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "CONFIG"):
        raise ConfigError(f"{path} defines no CONFIG (an Experiment built at module level)")
    return module


def load_experiment_file(path: str | Path) -> Any:
    """The `CONFIG` object of an experiment file."""
    return load_experiment_module(path).CONFIG


def _convert(text: str, current: Any, hint: Any, key: str) -> Any:
    """`text` as the type of the value it replaces."""
    if text in ("None", "null"):
        return None
    if isinstance(current, bool) or hint in (bool, Optional[bool]):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{key}={text!r}: expected true or false")
    for kind in (int, float):
        if (isinstance(current, kind) and not isinstance(current, bool)) or hint in (kind, Optional[kind]):
            try:
                return kind(float(text)) if kind is int and "e" in text.lower() else kind(text)
            except ValueError:
                raise ConfigError(f"{key}={text!r}: expected {kind.__name__}") from None
    if isinstance(current, str) or hint in (str, Optional[str]):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_override(cfg: Any, dotted: str, text: str, _done: str = "") -> Any:
    """A copy of the dataclass `cfg` with `dotted` (e.g. 'optim.lr') set from `text`."""
    head, _, rest = dotted.partition(".")
    full = f"{_done}{head}"
    if not dataclasses.is_dataclass(cfg):
        raise ConfigError(f"cannot set {_done + dotted!r}: {_done.rstrip('.')!r} is a {type(cfg).__name__}, "
                          f"not a config dataclass")
    names = [f.name for f in dataclasses.fields(cfg)]
    if head not in names:
        raise ConfigError(f"unknown key {full!r}: {type(cfg).__name__} has no {head!r}; known keys: "
                          f"{', '.join(names)}")
    current = getattr(cfg, head)
    if rest:
        return dataclasses.replace(cfg, **{head: apply_override(current, rest, text, f"{full}.")})
    hints = typing.get_type_hints(type(cfg))
    return dataclasses.replace(cfg, **{head: _convert(text, current, hints.get(head), full)})


def apply_overrides(cfg: Any, overrides: Sequence[str]) -> Any:
    """Apply every 'dotted.key=value' in order."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like dotted.key=value (e.g. optim.lr=3e-4)")
        key, text = item.split("=", 1)
        cfg = apply_override(cfg, key.strip(), text.strip())
    return cfg


def run_experiment(exp: Any) -> Any:
    """Train `exp`; an RPO loss with `iterations` > 1 runs every iteration (each from and referencing the last).

    Returns the final RunResult (the last iteration's for RPO).
    """
    if getattr(exp.loss, "iterations", 1) > 1:
        from nemotron_jax.train.alignment import run_rpo

        return run_rpo(exp)[-1]
    from nemotron_jax.train.loop import run

    return run(exp)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `nemotron-jax train`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        module = load_experiment_module(argv[0])
        exp = apply_overrides(module.CONFIG, argv[1:])
    except ConfigError as e:
        print(f"nemotron-jax train: {e}", file=sys.stderr)
        return 2
    if hasattr(module, "prepare"):  # an experiment's one-off set-up, e.g. training its tokenizer
        module.prepare(exp)
    result = run_experiment(exp)
    print(f"{exp.name}: {result.status} at step {result.step} ({result.consumed_samples} samples); "
          f"outputs in {result.run_dir}")
    return 0 if result.status == "finished" else 3
