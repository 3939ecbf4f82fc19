"""The tokenizer interface evaluation needs, and a byte-level tokenizer for smoke runs with random weights."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable


@runtime_checkable
class Tokenizer(Protocol):
    """Anything with encode(text) -> ids and decode(ids) -> text (SentencePiece processors fit)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes shifted past the special ids: id = byte + offset. Needs vocab_size >= 256 + offset."""

    def __init__(self, offset: int = 4) -> None:
        self.offset = offset
        self.vocab_size = 256 + offset

    def encode(self, text: str) -> list[int]:
        return [b + self.offset for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i - self.offset for i in ids if self.offset <= i < self.vocab_size).decode("utf-8", "replace")


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
