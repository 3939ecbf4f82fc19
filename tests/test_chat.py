"""Chat template strings, exact trained-token positions, reward inputs and JSONL error reporting."""

import json

import numpy as np
import pytest

from nemotron_jax.data import chat
from nemotron_jax.data.tokenizer import Tokenizer

CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"}]


@pytest.fixture(scope="module")
def tok():
    text = ["The quick brown fox jumps over the lazy dog. Hello there, how are you? 2+2=4."] * 50
    return Tokenizer.train(text, vocab_size=300)


def test_render_matches_spec_template():
    want = ("<extra_id_0>System\nBe brief.\n<extra_id_1>User\nHi\n<extra_id_1>Assistant\nHello!\n"
            "<extra_id_1>User\n2+2?\n<extra_id_1>Assistant\n4\n<extra_id_1>")
    assert chat.render_chat(CONV) == want
    assert chat.render_chat(CONV[:2], add_generation_prompt=True) == (
        "<extra_id_0>System\nBe brief.\n<extra_id_1>User\nHi\n<extra_id_1>Assistant\n")
    assert chat.render_chat(CONV[1:2]).startswith("<extra_id_0>System\n\n<extra_id_1>User\n")  # empty system
    assert chat.render_reward_input(CONV[:2], "Hey") == (
        "<extra_id_0>System\nBe brief.\n<extra_id_1>User\nHi\n<extra_id_1>Assistant\nHey\n<extra_id_2>")


def test_trained_tokens_are_exactly_replies_and_their_terminator(tok):
    ids, trained = chat.encode_chat(tok, CONV)
    # piecewise encoding = encoding the rendered string (no dummy prefix, markers are single ids)
    assert list(ids) == [tok.bos_id] + tok.encode(chat.render_chat(CONV))
    x1 = tok.piece_to_id("<extra_id_1>")
    decoded_trained = [tok.decode(ids[s:e + 1]) for s, e in _runs(trained)]
    assert decoded_trained == ["Hello!\n<extra_id_1>", "4\n<extra_id_1>"]
    # each trained run ends with the <extra_id_1> that closes the turn
    for s, e in _runs(trained):
        assert ids[e] == x1 and trained[e]
    # nothing in the system/user turns or headers is trained
    assert trained.sum() == len(tok.encode("Hello!\n")) + len(tok.encode("4\n")) + 2
    ids_eos, trained_eos = chat.encode_chat(tok, CONV, append_eos=True)
    assert ids_eos[-1] == tok.eos_id and trained_eos[-1]


def _runs(mask):
    """[(start, end_inclusive)] of True runs."""
    runs, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        if not m and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def test_lm_row_shifts_and_masks(tok):
    ids, trained = chat.encode_chat(tok, CONV)
    row = chat.lm_row(ids, trained, max_len=len(ids) + 3)
    n = len(ids) - 1
    np.testing.assert_array_equal(row["inputs"][:n], ids[:-1])
    np.testing.assert_array_equal(row["targets"][:n], ids[1:])
    np.testing.assert_array_equal(row["loss_mask"][:n], trained[1:])
    assert row["loss_mask"][n:].sum() == 0 and row["segment_ids"][n:].sum() == 0
    np.testing.assert_array_equal(row["positions"][:n], np.arange(n))
    short = chat.lm_row(ids, trained, max_len=5)  # truncation keeps the start
    np.testing.assert_array_equal(short["inputs"], ids[:5])


def test_prompt_and_reward_ids(tok):
    p = chat.encode_prompt(tok, CONV[:2])
    assert p == [tok.bos_id] + tok.encode(chat.render_chat(CONV[:2], add_generation_prompt=True))
    r = chat.encode_reward_input(tok, CONV[:2], "Hey")
    assert r[: len(p)] == p and r[-1] == tok.piece_to_id("<extra_id_2>")
    with pytest.raises(chat.ChatDataError, match="empty response"):
        chat.encode_reward_input(tok, CONV[:2], "  ")


def _write(tmp_path, rows):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_readers_accept_good_rows(tmp_path):
    p = _write(tmp_path, [{"messages": CONV[1:3], "system": "S"}])
    assert chat.read_chat_jsonl(p)[0][0] == {"role": "system", "content": "S"}
    p = _write(tmp_path, [{"prompt": "q", "chosen": "a", "rejected": "b", "chosen_reward": 3, "rejected_reward": 1.5},
                          {"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"}])
    pairs = chat.read_preference_jsonl(p)
    assert pairs[0].chosen_reward == 3.0 and pairs[1].chosen_reward is None
    p = _write(tmp_path, [{"prompt": "q", "response": "r", "helpfulness": 3, "correctness": 2, "coherence": 4,
                           "complexity": 1, "verbosity": None}])
    assert chat.read_helpsteer_jsonl(p)[0].labels == (3.0, 2.0, 4.0, 1.0, -100.0)


@pytest.mark.parametrize("reader,row,msg", [
    (chat.read_preference_jsonl, {"prompt": "q", "chosen": "", "rejected": "b"}, "'chosen' must be a non-empty"),
    (chat.read_preference_jsonl, {"prompt": "q", "chosen": "a"}, "missing field 'rejected'"),
    (chat.read_preference_jsonl, {"prompt": "q", "chosen": "a", "rejected": "b", "chosen_reward": "high",
                                  "rejected_reward": 1}, "'chosen_reward' must be a finite number"),
    (chat.read_preference_jsonl, {"prompt": "q", "chosen": "a", "rejected": "b", "chosen_reward": 1},
     "both 'chosen_reward'"),
    (chat.read_helpsteer_jsonl, {"prompt": "q", "response": "r", "helpfulness": "4"}, "'helpfulness' must be"),
    (chat.read_helpsteer_jsonl, {"prompt": "q", "helpfulness": 4}, "missing field 'response'"),
    (chat.read_chat_jsonl, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
     "empty assistant reply"),
    (chat.read_chat_jsonl, {"messages": [{"role": "bot", "content": "q"}]}, "role 'bot'"),
    (chat.read_chat_jsonl, "{not json", "not valid JSON"),
])
def test_bad_rows_name_file_and_line(tmp_path, reader, row, msg):
    good = {chat.read_chat_jsonl: {"messages": CONV}, chat.read_preference_jsonl:
            {"prompt": "q", "chosen": "a", "rejected": "b"},
            chat.read_helpsteer_jsonl: {"prompt": "q", "response": "r", "helpfulness": 1}}[reader]
    p = _write(tmp_path, [good, good, row])
    with pytest.raises(chat.ChatDataError, match=msg) as e:
        reader(p)
    assert f"{p}:3:" in str(e.value)
