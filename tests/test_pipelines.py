"""The pretraining pipeline end to end: the LM batch contract, determinism, process shards, blend shares, resume,
malformed input."""

import json
import logging
import random

import numpy as np
import pytest

from nemotron_jax.config import ConfigError, TextData, TextSource, nemotron4_blend
from nemotron_jax.data.pipelines import document_dataset, make_lm_iterator, per_process_batch
from nemotron_jax.data.sources import BadRecordError, MemorySource
from nemotron_jax.data.tokenizer import Tokenizer

# Three synthetic "languages" with disjoint alphabets, so a decoded row says which source it came from.
ALPHABETS = {"english": "abcdefghijklm", "multilingual": "nopqrstuvwxyz", "code": "0123456789=+;"}


def _docs(alphabet: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
                     for _ in range(rng.randint(1, 30))) for _ in range(n)]


CORPORA = {name: _docs(alpha, 200, i) for i, (name, alpha) in enumerate(ALPHABETS.items())}


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train([d for docs in CORPORA.values() for d in docs], vocab_size=400)


def _memory(weights=(0.7, 0.15, 0.15), extra=()):
    srcs = {name: (MemorySource(CORPORA[name] + list(extra), name=name), w) for name, w in zip(CORPORA, weights)}
    data = TextData(sources=tuple(TextSource(name, name=name, weight=w) for name, (_, w) in srcs.items()))
    return data, srcs


def _take(it, n):
    return [next(it) for _ in range(n)]


def _same(a, b):
    return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x) and len(a) == len(b)


def test_batches_follow_the_lm_contract(tok):
    data, srcs = _memory()
    it = make_lm_iterator(data, tok, batch_size=3, seq_len=32, sources=srcs)
    for batch in _take(it, 5):
        assert sorted(batch) == ["inputs", "loss_mask", "positions", "segment_ids", "targets"]
        assert all(v.shape == (3, 32) for v in batch.values())
        assert batch["inputs"].dtype == batch["targets"].dtype == np.int32
        assert batch["positions"].dtype == batch["segment_ids"].dtype == np.int32
        assert batch["loss_mask"].dtype == np.float32
        for b in range(3):
            seg, pos = batch["segment_ids"][b], batch["positions"][b]
            assert seg.min() >= 1  # concat packing on an endless stream never pads
            for s in np.unique(seg):
                idx = np.flatnonzero(seg == s)
                assert np.array_equal(pos[idx], np.arange(len(idx)))
                assert np.array_equal(batch["inputs"][b, idx[1:]], batch["targets"][b, idx[:-1]])
                # A segment that starts a document starts with bos; eos is only ever a segment's last target.
                eos_at = np.flatnonzero(batch["targets"][b, idx] == tok.eos_id)
                assert all(e == len(idx) - 1 for e in eos_at)


def _documents(batches, tok):
    """Rebuild documents from a single-source stream: its targets are doc1 ids, eos, doc2 ids, eos, ..."""
    stream = np.concatenate([row for b in batches for row in b["targets"]]).tolist()
    docs, cur = [], []
    for t in stream:
        if t == tok.eos_id:
            docs.append(tok.decode(cur))
            cur = []
        else:
            cur.append(t)
    return docs


def test_stream_holds_the_documents_in_shuffled_order(tok):
    docs = CORPORA["english"]
    data = TextData(sources=(TextSource("e", name="e"),), seed=3)
    it = make_lm_iterator(data, tok, batch_size=4, seq_len=50, sources={"e": (MemorySource(docs), 1.0)})
    got = _documents(_take(it, 20), tok)
    assert len(got) > 50 and len(set(got)) == len(got)
    assert all(d in docs for d in got) and got != docs[:len(got)]  # real documents, shuffled


def test_same_seed_same_batches_other_seed_different(tok):
    data, srcs = _memory()
    a = _take(make_lm_iterator(data, tok, batch_size=2, seq_len=40, sources=srcs), 6)
    b = _take(make_lm_iterator(data.replace(read_threads=2, prefetch_batches=0), tok, batch_size=2, seq_len=40,
                               sources=srcs), 6)
    c = _take(make_lm_iterator(data, tok, batch_size=2, seq_len=40, seed=1, sources=srcs), 6)
    assert _same(a, b)  # threads and prefetching change speed, never the stream
    assert not _same(a, c)


def test_two_process_shards_are_disjoint_and_complete(tok):
    docs = CORPORA["english"]
    data = TextData(sources=(TextSource("e", name="e"),), seed=5)
    srcs = {"e": (MemorySource(docs), 1.0)}
    whole = _documents(_take(make_lm_iterator(data, tok, batch_size=2, seq_len=64, sources=srcs), 40), tok)
    shards = [_documents(_take(make_lm_iterator(data, tok, batch_size=1, seq_len=64, shard_index=k,
                                                shard_count=2, sources=srcs), 40), tok) for k in (0, 1)]
    # Shard k reads documents k, k+2, k+4, ... of the one global order: together, exactly the whole stream.
    m = min(len(s) for s in shards)
    for k in (0, 1):
        assert shards[k][:m] == whole[k::2][:m]
    # One finite epoch of an uneven source: every document exactly once across the shards.
    ids = [f"{i:03d}" for i in range(101)]
    parts = [list(document_dataset(MemorySource(ids), seed=0, num_epochs=1, shard_index=k, shard_count=2))
             for k in (0, 1)]
    assert sorted(parts[0] + parts[1]) == ids and not set(parts[0]) & set(parts[1])


def _source_of(row, tok):
    chars = set(tok.decode(row.tolist()).replace(" ", ""))
    owners = [name for name, alpha in ALPHABETS.items() if chars <= set(alpha)]
    assert len(owners) == 1, (chars, owners)
    return owners[0]


def test_blend_shares_tokens_by_weight(tok):
    data, srcs = _memory(weights=(0.7, 0.15, 0.15))
    rows = [r for b in _take(make_lm_iterator(data, tok, batch_size=8, seq_len=24, sources=srcs), 50)
            for r in b["inputs"]]
    counts = {name: 0 for name in ALPHABETS}
    for r in rows:
        counts[_source_of(r, tok)] += 1
    shares = {k: v / len(rows) for k, v in counts.items()}  # rows are full, so row share == token share
    assert shares == pytest.approx({"english": 0.7, "multilingual": 0.15, "code": 0.15}, abs=0.02)


def test_resume_gives_the_identical_next_batches(tok):
    data, srcs = _memory(extra=[None])  # one malformed record per source, to check the counters resume too
    it = make_lm_iterator(data, tok, batch_size=2, seq_len=32, sources=srcs)
    saved = {}
    batches = []
    for step in range(30):
        if step in (0, 4, 13, 29):
            saved[step] = (json.loads(json.dumps(it.get_state())), it.stats())
        batches.append(next(it))
    for step, (state, stats) in saved.items():
        again = make_lm_iterator(data, tok, batch_size=2, seq_len=32, sources=srcs, start_state=state)
        assert again.stats() == stats
        assert _same([next(again)], batches[step:step + 1])
    # The next batches after the last snapshot, from a fresh iterator, continue the original.
    state, _ = saved[29]
    again = make_lm_iterator(data, tok, batch_size=2, seq_len=32, sources=srcs, start_state=state)
    assert _same(_take(again, 1), [batches[29]])
    assert _same(_take(again, 3), _take(it, 3))


def test_resume_with_a_changed_pipeline_fails_clearly(tok):
    data, srcs = _memory()
    state = make_lm_iterator(data, tok, batch_size=2, seq_len=32, sources=srcs).get_state()
    with pytest.raises(ValueError, match="seq_len: saved 32, now 48"):
        make_lm_iterator(data, tok, batch_size=2, seq_len=48, sources=srcs, start_state=state)


def _jsonl_with_bad_lines(path):
    lines = [json.dumps({"text": t}) for t in CORPORA["english"][:10]]
    lines[2] = '{"text": "unterminated'
    lines[6] = json.dumps({"body": "wrong field"})
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_malformed_records_skipped_counted_and_logged(tok, tmp_path, caplog):
    p = _jsonl_with_bad_lines(tmp_path / "c.jsonl")
    data = TextData(sources=(TextSource(p, name="c"),), num_epochs=1, shuffle=False, packing="first_fit")
    with caplog.at_level(logging.WARNING, logger="nemotron_jax.data.pipelines"):
        it = make_lm_iterator(data, tok, batch_size=1, seq_len=512, sources=None)
        rows = list(it)
    assert it.stats() == {"c": {"documents": 8, "bad_records": 2}}
    assert sum(int((r["targets"] == tok.eos_id).sum()) for r in rows) == 8
    assert f"{p}:3" in caplog.text and "malformed JSON" in caplog.text
    assert f"{p}:7" in caplog.text and "no field 'text'" in caplog.text


def test_malformed_records_stop_the_run_in_raise_mode(tok, tmp_path):
    p = _jsonl_with_bad_lines(tmp_path / "c.jsonl")
    data = TextData(sources=(TextSource(p, name="c"),), shuffle=False, on_bad_record="raise")
    with pytest.raises(BadRecordError, match=f"{p}:3: malformed JSON"):
        _take(make_lm_iterator(data, tok, batch_size=1, seq_len=16), 50)
    data = data.replace(on_bad_record="skip", max_bad_records=1)
    with pytest.raises(BadRecordError, match=f"{p}:7: .*more than max_bad_records=1"):
        _take(make_lm_iterator(data, tok, batch_size=1, seq_len=16), 50)


def test_finite_pass_with_padded_final_batch_sees_every_token(tok):
    docs = CORPORA["code"][:10]
    data = TextData(sources=(TextSource("c", name="c"),), num_epochs=1, shuffle=False)
    srcs = {"c": (MemorySource(docs), 1.0)}
    expected = sum(len(tok.encode(d)) + 1 for d in docs)  # [bos] + ids + [eos] gives len(ids) + 1 targets
    padded = list(make_lm_iterator(data, tok, batch_size=4, seq_len=16, sources=srcs, pad_final_batch=True))
    assert all(b["inputs"].shape == (4, 16) for b in padded)
    assert sum(b["loss_mask"].sum() for b in padded) == expected
    assert sum(int((b["targets"] == tok.eos_id).sum()) for b in padded) == 10
    last = padded[-1]
    assert np.all(last["loss_mask"][last["segment_ids"] == 0] == 0)
    dropped = list(make_lm_iterator(data, tok, batch_size=4, seq_len=16, sources=srcs))
    assert len(dropped) == len(padded) - 1 or expected % (4 * 16) == 0


def test_python_source_from_config(tok, tmp_path, monkeypatch):
    (tmp_path / "toy_corpus.py").write_text(
        "def english(n):\n    return ['abc def ' * (i + 1) for i in range(n)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = TextData(sources=(TextSource("toy_corpus:english", kind="python", kwargs=(("n", 5),)),),
                    shuffle=False)
    batch = next(make_lm_iterator(data, tok, batch_size=1, seq_len=8))
    assert tok.decode(batch["inputs"][0].tolist()) == "abc def "  # bos is dropped by decode


def test_config_and_batch_errors():
    with pytest.raises(ConfigError, match="unique"):
        TextData(sources=(TextSource("a.jsonl"), TextSource("a.jsonl")))
    with pytest.raises(ConfigError, match="weight"):
        TextSource("a.jsonl", weight=0)
    with pytest.raises(ConfigError, match="on_bad_record"):
        TextData(sources=(TextSource("a.jsonl"),), on_bad_record="ignore")
    blend = nemotron4_blend("en/*.jsonl", "ml/*.parquet", "code/")
    assert [s.weight for s in blend.sources] == [0.70, 0.15, 0.15]
    assert per_process_batch(768, 16) == 48
    with pytest.raises(ConfigError, match="multiple of 16"):
        per_process_batch(100, 16)


@pytest.mark.slow
def test_grain_worker_processes_resume_exactly(tok):
    data, srcs = _memory()
    data = data.replace(worker_count=2)  # each worker packs its share; the stream is fixed for a worker count
    it = make_lm_iterator(data, tok, batch_size=2, seq_len=32, sources=srcs)
    _take(it, 4)
    state = json.loads(json.dumps(it.get_state()))
    after = _take(it, 3)
    it.close()
    again = make_lm_iterator(data, tok, batch_size=2, seq_len=32, sources=srcs, start_state=state)
    assert _same(_take(again, 3), after)
    assert sum(s["documents"] for s in again.stats().values()) > 0
    again.close()
