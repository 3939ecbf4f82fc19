"""Held-out toy task accuracy: each question as one chat turn, greedy completion, the task's own answer checker.

    result = evaluate_tasks(generator, tw.eval_tasks(40))
    result["accuracy"], result["per_task"]["reverse"], result["predictions"][0]

`generator` is any `nemotron_jax.eval.generative.Generator` (in-process sampler or OpenAI-compatible endpoint);
all prompts go in one call so the backend batches them. Instruction following is scored by `nemotron_jax.eval.ifeval`
on `tw.eval_ifeval(...)`, reward-model accuracy by `nemotron_jax.eval.reward_bench` on `tw.rm_pairs(...)`.
"""

from __future__ import annotations

import collections
from typing import Any, Mapping, Sequence

from nemotron_jax.data.chat import render_chat
from nemotron_jax.data.toyworld.api import check_task_response
from nemotron_jax.eval.generative import CHAT_STOP, Generator, truncate_at_stop


def task_prompt(record: Mapping[str, Any], *, chat: bool = True) -> str:
    """The model input for an `eval_tasks` record: a single user turn ready for the assistant's reply."""
    if chat:
        return render_chat([{"role": "user", "content": record["question"]}], add_generation_prompt=True)
    return f"Q: {record['question']}\nA: "  # the quiz-sheet format of the pretraining corpus (base models)


def evaluate_tasks(generator: Generator, records: Sequence[Mapping[str, Any]], *, chat: bool = True,
                   max_tokens: int = 48) -> dict[str, Any]:
    """Exact-match accuracy overall and per task; `predictions` keeps every output and verdict."""
    if not records:
        raise ValueError("evaluate_tasks needs at least one record (ToyWorld.eval_tasks)")
    stop = CHAT_STOP if chat else ("\n",)
    outputs = generator.generate([task_prompt(r, chat=chat) for r in records], max_tokens=max_tokens, stop=stop)
    if len(outputs) != len(records):
        raise ValueError(f"generator returned {len(outputs)} completions for {len(records)} prompts")
    rows = []
    by_task: dict[str, list[bool]] = collections.defaultdict(list)
    for r, out in zip(records, outputs):
        text = truncate_at_stop(out, stop)
        ok = check_task_response(r, text)
        by_task[r["task"]].append(ok)
        rows.append({"id": r["id"], "task": r["task"], "gold": r["answer"], "output": text, "correct": ok})
    return {"accuracy": sum(x["correct"] for x in rows) / len(rows), "n": len(rows),
            "per_task": {t: sum(v) / len(v) for t, v in sorted(by_task.items())}, "predictions": rows}
