"""The tokenizer interface evaluation needs, and the context/continuation split at a token boundary."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable


@runtime_checkable
class Tokenizer(Protocol):
    """Anything with encode(text) -> ids and decode(ids) -> text (SentencePiece processors fit)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


def split_continuation(tok: Tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation, cut from the joint encoding so boundary merges are kept.

    Trailing spaces move from the context to the continuation first ("Answer: " + "A" -> "Answer:" + " A"), as
    subword vocabularies attach the space to the following word.
    """
    stripped = context.rstrip(" ")
    continuation = context[len(stripped):] + continuation
    ctx_ids = tok.encode(stripped) if stripped else []
    whole = tok.encode(stripped + continuation)
    if whole[:len(ctx_ids)] == ctx_ids:
        return ctx_ids, whole[len(ctx_ids):]
    return ctx_ids, tok.encode(continuation)  # the joint encoding re-segmented the boundary
