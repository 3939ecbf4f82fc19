"""Instruction following (IFEval shape), scored with the SDG verifiers, strict and loose as IFEval defines them.

    strict: instruction followed  <=>  response.strip() != "" and verify(response)
    loose:  instruction followed  <=>  any variant v (as is / '*' removed, x all / no first line / no last line /
            neither) has v.strip() != "" and verify(v)
    prompt-level accuracy       = share of prompts whose every instruction is followed
    instruction-level accuracy  = share of all instructions followed (pooled over prompts)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nemotron_jax.eval.generative import CHAT_STOP, Generator, Prompt, truncate_at_stop
from nemotron_jax.eval.io import DatasetError, load_jsonl, require_keys

# (instruction_id, kwargs, response, loose) -> followed?
Checker = Callable[[str, dict, str, bool], bool]


def sdg_checker(instruction_id: str, kwargs: dict, response: str, loose: bool) -> bool:
    """The SDG engineer's verifiers (nemotron_jax.sdg.instructions), IFEval ids."""
    from nemotron_jax.sdg import instructions

    inst = instructions.get(instruction_id)
    return inst.verify_loose(response, kwargs) if loose else inst.verify(response, kwargs)


@dataclasses.dataclass(frozen=True)
class IFEvalItem:
    key: str
    prompt: str
    instruction_ids: tuple[str, ...]
    kwargs: tuple[dict, ...]


def parse_ifeval(obj: dict[str, Any], where: str) -> IFEvalItem:
    """{"key", "prompt", "instruction_id_list": [..], "kwargs": [{..}, ..]}; null kwargs values are dropped."""
    require_keys(obj, ("prompt", "instruction_id_list", "kwargs"), where)
    ids, kws = obj["instruction_id_list"], obj["kwargs"]
    if not isinstance(ids, list) or not ids or not isinstance(kws, list) or len(ids) != len(kws):
        raise DatasetError(f"{where}: instruction_id_list and kwargs must be non-empty lists of equal length, got "
                           f"{len(ids) if isinstance(ids, list) else ids!r} ids and "
                           f"{len(kws) if isinstance(kws, list) else kws!r} kwargs")
    clean = tuple({k: v for k, v in (kw or {}).items() if v is not None} for kw in kws)
    return IFEvalItem(str(obj.get("key", where)), obj["prompt"], tuple(ids), clean)


def validate_with_sdg(items: Sequence[IFEvalItem], path: str | Path) -> None:
    """Fail before generating anything when an id or kwargs is unknown to the verifiers."""
    from nemotron_jax.sdg import instructions

    for item in items:
        for iid, kw in zip(item.instruction_ids, item.kwargs):
            try:
                instructions.get(iid).clean(kw)
            except instructions.InstructionError as e:
                raise DatasetError(f"{path}: prompt key {item.key}: {e}") from None


def load_ifeval(path: str | Path, *, validate: bool = True) -> list[IFEvalItem]:
    items = load_jsonl(path, parse_ifeval)
    if validate:
        validate_with_sdg(items, path)
    return items


def score_ifeval(items: Sequence[IFEvalItem], responses: Sequence[str],
                 checker: Checker = sdg_checker) -> dict[str, Any]:
    """Prompt- and instruction-level accuracy, strict and loose, plus per-instruction-id strict accuracy."""
    if len(items) != len(responses):
        raise ValueError(f"{len(items)} prompts but {len(responses)} responses")
    rows, per_id = [], {}
    for item, resp in zip(items, responses):
        strict = [checker(i, kw, resp, False) for i, kw in zip(item.instruction_ids, item.kwargs)]
        loose = [checker(i, kw, resp, True) for i, kw in zip(item.instruction_ids, item.kwargs)]
        rows.append({"key": item.key, "strict": strict, "loose": loose, "response": resp})
        for i, ok in zip(item.instruction_ids, strict):
            per_id.setdefault(i, []).append(ok)
    flat = lambda mode: [ok for r in rows for ok in r[mode]]
    return {"prompt_strict": float(np.mean([all(r["strict"]) for r in rows])),
            "prompt_loose": float(np.mean([all(r["loose"]) for r in rows])),
            "instruction_strict": float(np.mean(flat("strict"))),
            "instruction_loose": float(np.mean(flat("loose"))),
            "n": len(rows), "per_instruction": {i: float(np.mean(v)) for i, v in sorted(per_id.items())},
            "predictions": rows}


def evaluate_ifeval(generator: Generator, items: Sequence[IFEvalItem], *, chat: bool = True,
                    max_tokens: int = 512, checker: Checker = sdg_checker) -> dict[str, Any]:
    """Generate one response per prompt (chat template by default) and score it."""
    if chat:
        prompts: list[Prompt] = [[{"role": "user", "content": it.prompt}] for it in items]
        stop: tuple[str, ...] = CHAT_STOP
    else:
        prompts, stop = [it.prompt for it in items], ()
    outputs = generator.generate(prompts, max_tokens=max_tokens, stop=stop)
    return score_ifeval(items, [truncate_at_stop(o, stop).strip() for o in outputs], checker)
