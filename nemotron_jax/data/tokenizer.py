"""SentencePiece BPE tokenizer: train one (Nemotron-style options), load any `.model`, encode/decode in batches.

Ids of a tokenizer trained here (fixed, so configs and the chat template can rely on them):

    0 <pad>   1 <unk>   2 <s> (bos)   3 </s> (eos)
    4 <extra_id_0>   5 <extra_id_1>   6 <extra_id_2>     (chat turn markers; always one id, never split)
    7 .. 262  <0x00> .. <0xFF>                            (byte fallback: any text encodes, nothing is <unk>)
    263 ..    learned BPE pieces

Training options follow the Nemotron/Llama tokenizer recipe, adjusted so code survives a round trip:
`normalization_rule_name="identity"` (no NFKC folding), `remove_extra_whitespaces=False`,
`allow_whitespace_only_pieces=True` (indentation runs become pieces), `split_digits=True` (every digit is its own
token), `byte_fallback=True`, and no dummy-prefix space (so template pieces concatenate without stray spaces).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Optional

import sentencepiece as spm

CHAT_TOKENS = ("<extra_id_0>", "<extra_id_1>", "<extra_id_2>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# Defaults for SentencePieceTrainer; any of them can be overridden through `train(..., **overrides)`.
TRAINER_DEFAULTS: dict[str, Any] = dict(
    model_type="bpe",
    byte_fallback=True,
    split_digits=True,
    normalization_rule_name="identity",
    remove_extra_whitespaces=False,
    allow_whitespace_only_pieces=True,
    add_dummy_prefix=False,
    character_coverage=0.9995,
    max_sentencepiece_length=16,
    max_sentence_length=16384,
    pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
    pad_piece="<pad>", unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
    user_defined_symbols=",".join(CHAT_TOKENS),
    input_sentence_size=2_000_000,
    shuffle_input_sentence=True,
    minloglevel=2,
)


class Tokenizer:
    """A SentencePiece model with the ids the rest of the code needs (bos/eos/pad, chat markers)."""

    def __init__(self, model_proto: bytes):
        self._proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)

    # ---- construction ------------------------------------------------------------------------------------------

    @classmethod
    def train(cls, texts: Iterable[str] | Sequence[str | os.PathLike], *, vocab_size: int,
              from_files: bool = False, num_threads: int = 2, **overrides: Any) -> "Tokenizer":
        """Train a BPE model on documents (an iterable of strings) or, with `from_files=True`, on text files."""
        _check_vocab_size(vocab_size)
        opts = {**TRAINER_DEFAULTS, **overrides, "vocab_size": vocab_size, "num_threads": num_threads}
        proto = io.BytesIO()
        try:
            if from_files:
                paths = [os.fspath(p) for p in texts]
                missing = [p for p in paths if not os.path.isfile(p)]
                if missing:
                    raise FileNotFoundError(f"tokenizer training files not found: {missing}")
                spm.SentencePieceTrainer.train(input=paths, model_writer=proto, **opts)
            else:
                spm.SentencePieceTrainer.train(sentence_iterator=_training_lines(texts), model_writer=proto,
                                               **opts)
        except RuntimeError as e:
            raise ValueError(f"SentencePiece training failed ({e}). 'Vocabulary size too high': train on more "
                             f"text or lower vocab_size (now {vocab_size}); 'smaller than required_chars': raise "
                             f"vocab_size or lower character_coverage.") from e
        return cls(proto.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """Load any SentencePiece `.model` file."""
        with open(path, "rb") as f:
            return cls(f.read())

    def save(self, path: str | os.PathLike) -> None:
        """Write the `.model` file (the serialized model proto), creating parent folders."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(self._proto)

    def __getstate__(self) -> dict[str, bytes]:  # grain worker processes receive a pickled tokenizer
        return {"proto": self._proto}

    def __setstate__(self, state: dict[str, bytes]) -> None:
        self.__init__(state["proto"])

    # ---- ids ---------------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def bos_id(self) -> int:
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self._sp.eos_id()

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    @property
    def pad_id(self) -> int:
        """The pad piece's id; models without one (e.g. Llama's) pad with eos, which losses mask out anyway."""
        pid = self._sp.pad_id()
        return pid if pid >= 0 else self.eos_id

    def piece_to_id(self, piece: str) -> int:
        """Id of a piece; raises KeyError for a piece the vocabulary lacks (instead of silently returning unk)."""
        pid = self._sp.piece_to_id(piece)
        if pid == self.unk_id and piece != self._sp.id_to_piece(self.unk_id):
            raise KeyError(f"piece {piece!r} is not in this tokenizer's vocabulary")
        return pid

    def id_to_piece(self, token_id: int) -> str:
        return self._sp.id_to_piece(int(token_id))

    def has_piece(self, piece: str) -> bool:
        try:
            self.piece_to_id(piece)
            return True
        except KeyError:
            return False

    @property
    def chat_token_ids(self) -> tuple[int, int, int]:
        """Ids of `<extra_id_0>` (system), `<extra_id_1>` (turn), `<extra_id_2>` (reward-model end marker)."""
        return tuple(self.piece_to_id(p) for p in CHAT_TOKENS)  # type: ignore[return-value]

    # ---- encode / decode ---------------------------------------------------------------------------------------

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Text -> ids, optionally framed by bos/eos. Chat markers in the text map to their single ids."""
        return self._sp.encode(text, add_bos=bos, add_eos=eos)

    def encode_batch(self, texts: Sequence[str], *, bos: bool = False, eos: bool = False,
                     num_threads: int = 0) -> list[list[int]]:
        """Encode many texts at once (SentencePiece's C++ thread pool; 0 threads = its default)."""
        return self._sp.encode(list(texts), add_bos=bos, add_eos=eos, num_threads=num_threads or None)

    def encode_pieces(self, text: str) -> list[str]:
        return self._sp.encode(text, out_type=str)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text; bos/eos/pad are dropped, byte-fallback pieces are reassembled into UTF-8."""
        return self._sp.decode([int(i) for i in ids])

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return self._sp.decode([[int(i) for i in ids] for ids in batch])

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, bos={self.bos_id}, eos={self.eos_id}, pad={self.pad_id})"


def _training_lines(texts: Iterable[str]) -> Iterator[str]:
    """SentencePiece trains on sentences without newlines: feed each document line by line."""
    for doc in texts:
        if not isinstance(doc, str):
            raise TypeError(f"tokenizer training texts must be str, got {type(doc).__name__}")
        for line in doc.split("\n"):
            if line.strip():
                yield line


def _check_vocab_size(vocab_size: int) -> None:
    floor = 4 + len(CHAT_TOKENS) + 256 + 1  # specials + chat markers + 256 byte pieces + at least one merge
    if vocab_size < floor:
        raise ValueError(f"vocab_size={vocab_size} is too small: the specials, chat markers and 256 byte-fallback "
                         f"pieces alone take {floor - 1} ids; use at least {floor}.")


def load_tokenizer(path: Optional[str | os.PathLike]) -> Tokenizer:
    """`Tokenizer.load` with a clear error when no path is configured."""
    if not path:
        raise ValueError("no tokenizer path configured: set TextData.tokenizer to a SentencePiece .model file "
                         "(train one with nemotron_jax.data.tokenizer.Tokenizer.train)")
    return Tokenizer.load(path)
