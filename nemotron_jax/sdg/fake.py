"""A deterministic stand-in model for dry runs and tests: answers every SDG template in its expected shape.

Use it in a config as {"backend": "scripted", "script": "nemotron_jax.sdg.fake:fake_llm"} to check a pipeline end
to end (counts, files, resume, shards) before pointing it at a real endpoint. Answers depend only on the request,
so they replay exactly. Rewards: longer answers with more distinct words score higher (a known, checkable order).
"""

from __future__ import annotations

import hashlib
import re


def _h(*parts: object) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _numbered(prefix: str, n: int, salt: str) -> str:
    return "Sure! Here is the list:\n" + "\n".join(f"{i + 1}. {prefix} {_h(salt, i) % 1000}" for i in range(n))


def _n(prompt: str) -> int:
    m = re.search(r"generate (\d+)|List (\d+)", prompt, flags=re.I)
    return int(next(g for g in m.groups() if g)) if m else 3


def _answer(prompt: str, seed: object, j: int) -> str:
    """A response to an ordinary user turn; sample j gets more detail (so rewards order by j)."""
    words = re.findall(r"[a-z]+", prompt.lower())[:6]
    extra = " ".join(f"detail{_h(seed, j, i) % 97}" for i in range(3 * j))
    return f"answer about {' '.join(words)} {extra}".strip() + "."


def fake_llm(kind: str, payload: dict) -> dict:
    """(kind, request) -> response, OpenAI-backend shaped: {"texts": [...]} or {"reward", "attributes"}."""
    if kind == "reward":
        text = payload["messages"][-1]["content"]
        distinct = len(set(text.split()))
        attrs = {"helpfulness": min(4.0, distinct / 4), "correctness": 2.0, "coherence": 3.0,
                 "complexity": 1.0, "verbosity": min(4.0, len(text) / 100)}
        return {"reward": float(distinct), "attributes": attrs}
    prompt = payload["messages"][-1]["content"] if kind == "chat" else payload["prompt"]
    seed = payload.get("seed")
    return {"texts": [_reply(prompt, seed, j) for j in range(payload.get("n", 1))]}


def _reply(prompt: str, seed: object, j: int) -> str:
    if "[[A]]" in prompt:  # pairwise judge: prefers the longer answer, whatever the order
        a = prompt.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
        b = prompt.split("[The Start of Assistant B's Answer]\n")[1].split("\n[The End")[0]
        if len(a) == len(b):  # a tie: position bias, answers "A" in both orders (inconsistent, gets dropped)
            return "Both are similar. [[A]]"
        return "Explanation. [[A]]" if len(a) > len(b) else "Explanation. [[B]]"
    if "belong to" in prompt:
        return "Yes." if _h(prompt) % 3 else "No, it does not."
    if "revise the question" in prompt or "revise the task" in prompt:
        return "Revised: " + prompt.split("\n")[0].split(": ", 1)[-1] + " Please give examples."
    if "Write the user's next" in prompt or "role-playing a user" in prompt:
        return f"Thanks, that helps! Could you explain point {_h(prompt, seed) % 10} further?"
    if "comprehensive topics" in prompt or "List " in prompt or "generate" in prompt.lower():
        key = re.sub(r"\W+", " ", prompt)[-40:]
        return _numbered("item", _n(prompt), f"{key}/{seed}")
    return _answer(prompt, seed, j)
