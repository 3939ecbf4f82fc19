"""Tokenizer: fixed special ids, lossless round trips (code whitespace, unicode), split digits, atomic chat markers."""

import pickle
import random

import pytest

from nemotron_jax.data.tokenizer import CHAT_TOKENS, Tokenizer

WORDS = "the a river city mountain quick brown fox jumps over lazy dog alpha beta gamma delta said went".split()


def _corpus(seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for i in range(300):
        docs.append(" ".join(rng.choice(WORDS) for _ in range(30)) + f". In {1900 + i} there were {i * 37} of them.")
        docs.append(f"def f{i}(x, y):\n    if x > {i}:\n        return x * y\n\treturn  y - {i}\n")
    return docs


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train(_corpus(), vocab_size=480)


def test_fixed_special_ids(tok):
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 2, 3, 1)
    assert tok.chat_token_ids == (4, 5, 6)
    assert [tok.id_to_piece(i) for i in (4, 5, 6)] == list(CHAT_TOKENS)
    assert tok.piece_to_id("<0x00>") == 7 and tok.piece_to_id("<0xFF>") == 262
    assert tok.vocab_size == 480


@pytest.mark.parametrize("text", [
    "def g(y):\n\tif y:\n        return  'x'   \n\n\n# trailing spaces   ",
    "  leading spaces and\r\nwindows newlines\r\n",
    "héllo wörld — 你好, мир 🙂 ∑x²",
    "12345 + 0.5 = 12345.5; 2024-06-14",
    "<extra_id_0>System\n\n<extra_id_1>User\nhi there\n<extra_id_1>Assistant\n",
])
def test_round_trip_is_lossless(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.unk_id not in ids  # byte fallback: nothing is unknown


def test_indentation_survives_as_whitespace_pieces(tok):
    pieces = tok.encode_pieces("    return x")
    assert "".join(pieces).replace("\u2581", " ") == "    return x"
    assert any(set(p) == {"\u2581"} and len(p) >= 2 for p in pieces), pieces  # a run of spaces is one piece


def test_digits_are_split(tok):
    pieces = tok.encode_pieces("In 1987 there were 40213 items")
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert digits == list("198740213")
    # No learned piece (after the specials and the 256 byte pieces) holds two digits.
    vocab = [tok.id_to_piece(i) for i in range(263, tok.vocab_size)]
    assert not [p for p in vocab if sum(c.isdigit() for c in p) > 1]


def test_chat_markers_are_single_ids_never_split(tok):
    for marker, mid in zip(CHAT_TOKENS, (4, 5, 6)):
        for text in (marker, f"x{marker}y", f"  {marker}\n", f"{marker}{marker}"):
            ids = tok.encode(text)
            assert ids.count(mid) == text.count(marker), (text, tok.encode_pieces(text))
    # No other piece contains a marker, and near-misses never produce one.
    assert all("extra_id" not in tok.id_to_piece(i) for i in range(7, tok.vocab_size))
    assert not set(tok.encode("<extra_id_3> <extra_id_1 extra_id_2>")) & {4, 5, 6}


def test_bos_eos_framing_and_decode_drops_them(tok):
    ids = tok.encode("the river", bos=True, eos=True)
    assert ids[0] == 2 and ids[-1] == 3 and ids[1:-1] == tok.encode("the river")
    assert tok.decode(ids) == "the river"


def test_batch_encode_decode_match_single(tok):
    texts = _corpus(1)[:20]
    batch = tok.encode_batch(texts, bos=True)
    assert batch == [tok.encode(t, bos=True) for t in texts]
    assert tok.decode_batch(batch) == texts


def test_save_load_and_pickle_keep_the_model(tok, tmp_path):
    path = tmp_path / "sub" / "tok.model"
    tok.save(path)
    again = Tokenizer.load(path)
    text = _corpus(2)[5]
    assert again.encode(text) == tok.encode(text) and again.vocab_size == tok.vocab_size
    assert pickle.loads(pickle.dumps(tok)).encode(text) == tok.encode(text)


def test_train_from_files(tmp_path):
    files = []
    for i, chunk in enumerate((_corpus(0)[:300], _corpus(0)[300:])):
        files.append(tmp_path / f"part{i}.txt")
        files[-1].write_text("\n".join(chunk))
    tok = Tokenizer.train(files, vocab_size=400, from_files=True)
    assert tok.vocab_size == 400 and tok.chat_token_ids == (4, 5, 6)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        Tokenizer.train([tmp_path / "nope.txt"], vocab_size=400, from_files=True)


def test_any_model_loads_and_pad_falls_back_to_eos(tmp_path):
    # A Llama-style model: unk 0, bos 1, eos 2, no pad piece, no chat markers.
    tok = Tokenizer.train(_corpus(), vocab_size=400, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                          user_defined_symbols="")
    tok.save(tmp_path / "llama_like.model")
    tok = Tokenizer.load(tmp_path / "llama_like.model")
    assert (tok.unk_id, tok.bos_id, tok.eos_id, tok.pad_id) == (0, 1, 2, 2)
    assert not tok.has_piece("<extra_id_1>")
    with pytest.raises(KeyError, match="extra_id_1"):
        tok.piece_to_id("<extra_id_1>")


def test_bad_vocab_sizes_fail_clearly():
    with pytest.raises(ValueError, match="at least"):
        Tokenizer.train(_corpus(), vocab_size=100)
    with pytest.raises(ValueError, match="lower vocab_size"):
        Tokenizer.train(["tiny corpus"] * 5, vocab_size=5000)
