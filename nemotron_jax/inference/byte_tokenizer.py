"""A byte-level fallback tokenizer for smoke tests of random-init models (no SentencePiece model needed).

Its ids follow the layout of the project's SentencePiece tokenizers (data/tokenizer.py), so the chat template and
the stop ids work unchanged:

    0 <pad>  1 <unk>  2 <s>  3 </s>  4 <extra_id_0>  5 <extra_id_1>  6 <extra_id_2>  7..262 the bytes 0x00..0xFF

A model whose vocabulary is smaller than 263 cannot see every byte: bytes past the vocabulary encode as <unk>
(decoded as U+FFFD). Real checkpoints should be served with their own tokenizer (`--tokenizer PATH`).
"""

from __future__ import annotations

import re
from typing import Sequence

CHAT_TOKENS = ("<extra_id_0>", "<extra_id_1>", "<extra_id_2>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
BYTE_OFFSET = 7
_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in CHAT_TOKENS) + ")")


class ByteTokenizer:
    """UTF-8 bytes as ids 7..262 plus the specials and chat markers as single ids."""

    bos_id, eos_id, pad_id, unk_id = BOS_ID, EOS_ID, PAD_ID, UNK_ID

    def __init__(self, vocab_size: int = BYTE_OFFSET + 256):
        if vocab_size <= BYTE_OFFSET:
            raise ValueError(f"ByteTokenizer needs a vocabulary of more than {BYTE_OFFSET} ids, got {vocab_size}")
        self.vocab_size = vocab_size

    def piece_to_id(self, piece: str) -> int:
        if piece not in CHAT_TOKENS:
            raise KeyError(f"piece {piece!r} is not a ByteTokenizer special piece")
        return 4 + CHAT_TOKENS.index(piece)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """'a<extra_id_1>' -> [104, 5]: chat markers are one id each, everything else its UTF-8 bytes."""
        ids = [BOS_ID] if bos else []
        for part in _SPLIT.split(text):
            if part in CHAT_TOKENS:
                ids.append(self.piece_to_id(part))
            else:
                ids += [b + BYTE_OFFSET if b + BYTE_OFFSET < self.vocab_size else UNK_ID for b in part.encode()]
        return ids + ([EOS_ID] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        """Bytes back to text (invalid UTF-8 -> U+FFFD); bos/eos/pad vanish, chat markers print as themselves."""
        out, buf = [], bytearray()
        for i in map(int, ids):
            if BYTE_OFFSET <= i < BYTE_OFFSET + 256:
                buf.append(i - BYTE_OFFSET)
                continue
            out.append(buf.decode(errors="replace"))
            buf = bytearray()
            if 4 <= i < BYTE_OFFSET:
                out.append(CHAT_TOKENS[i - 4])
            elif i == UNK_ID or i >= BYTE_OFFSET + 256:  # ids past the bytes (a bigger model vocabulary)
                out.append("\ufffd")
        out.append(buf.decode(errors="replace"))
        return "".join(out)
