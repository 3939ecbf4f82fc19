"""The `nemotron-jax` command: a thin dispatcher; each subcommand lives beside the code it drives."""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

# subcommand -> ("module:function", one-line help). Each function takes the remaining argv and returns an exit code.
COMMANDS = {
    "train": ("nemotron_jax.train.cli:main", "train EXPERIMENT.py [key=value ...]: run an experiment file"),
    "plan": ("nemotron_jax.parallel.plan:cli_main", "plan EXPERIMENT.py: per-device memory/FLOPs/bubble, no devices"),
    "serve": ("nemotron_jax.inference.server:cli_main", "serve --checkpoint DIR | --preset NAME --random-init"),
    "sdg": ("nemotron_jax.sdg.runner:cli_main", "sdg CONFIG: run a synthetic-data pipeline"),
    "eval": ("nemotron_jax.eval.cli:main", "eval ...: benchmarks and per-stage reports"),
    "convert": ("nemotron_jax.checkpoint.hf:cli_main", "convert: HF/Megatron checkpoints <-> nemotron_jax"),
    "demo": ("nemotron_jax.recipe.weak_to_strong:cli_main", "demo [--quick]: the toy weak-to-strong recipe"),
}


def _usage() -> str:
    lines = ["usage: nemotron-jax COMMAND [args]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"nemotron-jax: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func = COMMANDS[argv[0]][0].split(":")
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
