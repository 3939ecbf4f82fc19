"""The Nemotron chat template, assistant-only loss masks, and JSONL readers for SFT, preference and HelpSteer data.

Template (SPEC §5), one string per conversation:

    <extra_id_0>System\n{system}\n<extra_id_1>User\n{user}\n<extra_id_1>Assistant\n{reply}\n<extra_id_1>User\n...

Tokenisation is piecewise and canonical: markers become their single ids, every text piece is encoded on its own,
so the boundary between prompt and reply is always a token boundary. The inference server and SDG encode prompts
with `encode_prompt` (same pieces) so training and generation see identical token streams.

Which tokens are trained (loss_mask = 1 on their *targets*): every assistant reply, its closing "\n" and the
`<extra_id_1>` that ends the turn (so the model learns to stop — the sampler stops on `<extra_id_1>`), plus eos
when `append_eos`. Never trained: bos, the system turn, user turns, and the "<extra_id_1>Assistant\n" header.

    [bos] <x0> "System\n…\n" <x1> "User\n…\n" <x1> "Assistant\n" "reply\n" <x1>
      0    0        0         0       0        0         0           1...1   1

Reward-model inputs end with the marker the head reads (SPEC §3): `...<extra_id_1>Assistant\n{response}\n<extra_id_2>`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any, Optional, Protocol

import numpy as np

from nemotron_jax.data.jsonl import iter_jsonl

from nemotron_jax.data.tokenizer import CHAT_TOKENS

SYSTEM, TURN, RM_END = CHAT_TOKENS  # <extra_id_0>, <extra_id_1>, <extra_id_2>
ROLES = ("system", "user", "assistant")
ROLE_NAMES = ("System", "User", "Assistant")  # the word after each marker in the template
ROLE_HEADERS = tuple(f"{name}\n" for name in ROLE_NAMES)  # each a piece of its own in the template
HELPSTEER_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
MISSING_LABEL = -100.0


class ChatDataError(ValueError):
    """Malformed chat/preference/reward data; the message names the file and line."""


class ChatTokenizer(Protocol):
    bos_id: int
    eos_id: int

    def encode(self, text: str) -> list[int]: ...

    def piece_to_id(self, piece: str) -> int: ...


Message = dict[str, str]


# ------------------------------------------------------------------------------------------------------------
# Template
# ------------------------------------------------------------------------------------------------------------


def _split_system(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], list(messages[1:])
    return "", list(messages)


def template_pieces(messages: Sequence[Message], *, add_generation_prompt: bool = False) -> list[tuple[str, bool]]:
    """The conversation as (piece, trained) pairs; a piece is a marker or plain text; joined, the template."""
    check_messages(messages)
    system, turns = _split_system(messages)
    system_name, user_name, assistant_name = ROLE_NAMES
    pieces: list[tuple[str, bool]] = [(SYSTEM, False), (f"{system_name}\n{system}\n", False)]
    for i, m in enumerate(turns):
        if m["role"] == "user":
            pieces += [(TURN, False), (f"{user_name}\n{m['content']}\n", False)]
        else:
            pieces += [(TURN, False), (f"{assistant_name}\n", False), (f"{m['content']}\n", True), (TURN, True)]
    if add_generation_prompt:
        pieces += [(TURN, False), (f"{assistant_name}\n", False)]
    # the <extra_id_1> closing an assistant turn also opens the next turn: keep one marker, trained
    merged: list[tuple[str, bool]] = []
    for piece, trained in pieces:
        if piece == TURN and merged and merged[-1][0] == TURN:
            merged[-1] = (TURN, merged[-1][1] or trained)
            continue
        merged.append((piece, trained))
    return merged


def render_chat(messages: Sequence[Message], *, add_generation_prompt: bool = False) -> str:
    """The template as one string (what an OpenAI-compatible completion endpoint is sent)."""
    return "".join(p for p, _ in template_pieces(messages, add_generation_prompt=add_generation_prompt))


def render_reward_input(prompt: Sequence[Message], response: str) -> str:
    """`...<extra_id_1>Assistant\\n{response}\\n<extra_id_2>`: the text whose last token the reward head reads."""
    return render_chat(list(prompt) + [{"role": "assistant", "content": response}])[: -len(TURN)] + RM_END


def check_messages(messages: Sequence[Message], where: str = "conversation") -> None:
    """Roles known, contents strings, system only first, no empty assistant reply; raises ChatDataError."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ChatDataError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ChatDataError(f"{where}: message {i} must be an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise ChatDataError(f"{where}: message {i} has role {m['role']!r}; expected one of {ROLES}")
        if not isinstance(m["content"], str):
            raise ChatDataError(f"{where}: message {i} content must be a string, got {type(m['content']).__name__}")
        if m["role"] == "system" and i != 0:
            raise ChatDataError(f"{where}: a system message may only come first (message {i})")
        if m["role"] == "assistant" and not m["content"].strip():
            raise ChatDataError(f"{where}: message {i} is an empty assistant reply")


# ------------------------------------------------------------------------------------------------------------
# Tokenisation
# ------------------------------------------------------------------------------------------------------------


def _encode_pieces(tok: ChatTokenizer, pieces: Sequence[tuple[str, bool]]) -> tuple[list[int], list[bool]]:
    ids: list[int] = []
    trained: list[bool] = []
    for piece, t in pieces:
        part = [tok.piece_to_id(piece)] if piece in CHAT_TOKENS else tok.encode(piece)
        ids += part
        trained += [t] * len(part)
    return ids, trained


def encode_chat(tok: ChatTokenizer, messages: Sequence[Message], *,
                append_eos: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ids [n], trained [n] bool): bos + template; trained marks reply tokens and their closing marker (+ eos)."""
    ids, trained = _encode_pieces(tok, template_pieces(messages))
    ids, trained = [tok.bos_id] + ids, [False] + trained
    if append_eos:
        ids, trained = ids + [tok.eos_id], trained + [True]
    return np.asarray(ids, np.int32), np.asarray(trained, bool)


def encode_prompt(tok: ChatTokenizer, messages: Sequence[Message]) -> list[int]:
    """bos + template + "<extra_id_1>Assistant\\n": the ids a sampler continues (stop on `<extra_id_1>` / eos)."""
    ids, _ = _encode_pieces(tok, template_pieces(messages, add_generation_prompt=True))
    return [tok.bos_id] + ids


def encode_reward_input(tok: ChatTokenizer, prompt: Sequence[Message], response: str) -> list[int]:
    """bos + prompt + "Assistant\\n" + response + "\\n" + `<extra_id_2>` (the head reads the last id)."""
    if not response.strip():
        raise ChatDataError("reward input: empty response")
    return encode_prompt(tok, prompt) + tok.encode(f"{response}\n") + [tok.piece_to_id(RM_END)]


def encode_response(tok: ChatTokenizer, prompt: Sequence[Message], response: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, trained) of prompt + one assistant reply: the per-response sequence DPO/RPO score."""
    return encode_chat(tok, list(prompt) + [{"role": "assistant", "content": response}])


# ------------------------------------------------------------------------------------------------------------
# LM rows (the batch contract: inputs/targets/loss_mask/positions/segment_ids, [B, T])
# ------------------------------------------------------------------------------------------------------------


def lm_row(ids: np.ndarray, trained: np.ndarray, max_len: int, pad_id: int = 0) -> dict[str, np.ndarray]:
    """One unpacked row of length max_len: shifted targets, mask on trained targets, right padding (segment 0)."""
    ids, trained = ids[: max_len + 1], trained[: max_len + 1]  # truncation keeps the start of the conversation
    n = len(ids) - 1
    row = {"inputs": np.full(max_len, pad_id, np.int32), "targets": np.full(max_len, pad_id, np.int32),
           "loss_mask": np.zeros(max_len, np.float32), "positions": np.zeros(max_len, np.int32),
           "segment_ids": np.zeros(max_len, np.int32)}
    row["inputs"][:n], row["targets"][:n] = ids[:-1], ids[1:]
    row["loss_mask"][:n] = trained[1:]
    row["positions"][:n] = np.arange(n)
    row["segment_ids"][:n] = 1
    return row


def stack_rows(rows: Sequence[dict[str, np.ndarray]], prefix: str = "") -> dict[str, np.ndarray]:
    """Stack per-row dicts into a [B, ...] batch, optionally prefixing keys (chosen_, rejected_)."""
    return {prefix + k: np.stack([r[k] for r in rows]) for k in rows[0]}


# ------------------------------------------------------------------------------------------------------------
# JSONL readers
# ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PreferencePair:
    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    chosen_reward: Optional[float] = None
    rejected_reward: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class RatedResponse:
    prompt: tuple[Message, ...]
    response: str
    labels: tuple[float, ...]  # HELPSTEER_ATTRIBUTES order (or the reader's), MISSING_LABEL where absent


def _jsonl_records(path: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    for lineno, rec in iter_jsonl(path, error=ChatDataError):
        yield f"{os.fspath(path)}:{lineno}", rec


def _field(rec: dict, key: str, where: str) -> Any:
    if key not in rec:
        raise ChatDataError(f"{where}: missing field {key!r} (has {sorted(rec)})")
    return rec[key]


def _text(rec: dict, key: str, where: str) -> str:
    val = _field(rec, key, where)
    if not isinstance(val, str) or not val.strip():
        raise ChatDataError(f"{where}: field {key!r} must be a non-empty string")
    return val


def _number(val: Any, key: str, where: str) -> float:
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
        raise ChatDataError(f"{where}: field {key!r} must be a finite number, got {val!r}")
    return float(val)


def _prompt(rec: dict, where: str) -> tuple[Message, ...]:
    """`prompt` is a user string or a list of messages (without the final assistant reply)."""
    val = _field(rec, "prompt", where)
    msgs = [{"role": "user", "content": val}] if isinstance(val, str) else val
    if isinstance(val, str) and not val.strip():
        raise ChatDataError(f"{where}: field 'prompt' is empty")
    check_messages(msgs, where)
    if msgs[-1]["role"] != "user":
        raise ChatDataError(f"{where}: the prompt must end with a user message")
    if isinstance(rec.get("system"), str) and msgs[0]["role"] != "system":
        msgs = [{"role": "system", "content": rec["system"]}] + list(msgs)
    return tuple(msgs)


def read_chat_jsonl(path: str | os.PathLike) -> list[list[Message]]:
    """Chat SFT rows `{"messages": [{"role", "content"}, ...]}` (optional top-level "system"); ≥1 assistant turn."""
    out = []
    for where, rec in _jsonl_records(path):
        msgs = _field(rec, "messages", where)
        check_messages(msgs, where)
        if not any(m["role"] == "assistant" for m in msgs):
            raise ChatDataError(f"{where}: no assistant message to train on")
        if isinstance(rec.get("system"), str) and msgs[0]["role"] != "system":
            msgs = [{"role": "system", "content": rec["system"]}] + list(msgs)
        out.append([dict(role=m["role"], content=m["content"]) for m in msgs])
    return out


def read_text_jsonl(path: str | os.PathLike) -> list[str]:
    """Plain documents `{"text": ...}` (the pretraining corpus format), in file order."""
    return [_text(rec, "text", where) for where, rec in _jsonl_records(path)]


def read_preference_jsonl(path: str | os.PathLike, *, require_rewards: bool = False) -> list[PreferencePair]:
    """Pairs `{"prompt", "chosen", "rejected"}` plus optional numeric `chosen_reward`/`rejected_reward`."""
    out = []
    for where, rec in _jsonl_records(path):
        prompt = _prompt(rec, where)
        chosen, rejected = _text(rec, "chosen", where), _text(rec, "rejected", where)
        has = [k in rec and rec[k] is not None for k in ("chosen_reward", "rejected_reward")]
        if any(has) and not all(has) or require_rewards and not all(has):
            raise ChatDataError(f"{where}: needs both 'chosen_reward' and 'rejected_reward' (RPO) or neither")
        rewards = [_number(rec[k], k, where) for k in ("chosen_reward", "rejected_reward")] if all(has) else [None] * 2
        out.append(PreferencePair(prompt, chosen, rejected, *rewards))
    return out


def read_helpsteer_jsonl(path: str | os.PathLike,
                         attributes: Sequence[str] = HELPSTEER_ATTRIBUTES) -> list[RatedResponse]:
    """HelpSteer rows `{"prompt", "response", <attribute>: number, ...}`; an absent or null attribute is missing
    (label −100, ignored by the loss); a non-numeric one is an error."""
    out = []
    for where, rec in _jsonl_records(path):
        prompt, response = _prompt(rec, where), _text(rec, "response", where)
        labels = tuple(MISSING_LABEL if rec.get(a) is None else _number(rec[a], a, where) for a in attributes)
        if all(v == MISSING_LABEL for v in labels):
            raise ChatDataError(f"{where}: none of the attributes {tuple(attributes)} is present")
        out.append(RatedResponse(prompt, response, labels))
    return out


def write_jsonl(path: str | os.PathLike, records: Sequence[Any]) -> None:
    """Write dicts or the dataclasses above as JSONL (creates parent folders)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r) + "\n")
