"""Packing: hand-made rows checked exactly; documents never share a segment; state resumes on the exact row."""

import json

import grain
import numpy as np
import pytest

from nemotron_jax.data.packing import PackedDataset, lm_example, pack_examples, stack_rows


def _rows_as_lists(rows):
    return [{k: v.tolist() for k, v in r.items()} for r in rows]


def test_lm_example_shifts_inside_the_document():
    ex = lm_example([2, 7, 8, 3], loss_mask=[0, 0, 1, 1])
    assert ex["inputs"].tolist() == [2, 7, 8]
    assert ex["targets"].tolist() == [7, 8, 3]
    assert ex["loss_mask"].tolist() == [0, 1, 1]
    assert ex["inputs"].dtype == np.int32 and ex["loss_mask"].dtype == np.float32
    with pytest.raises(ValueError, match="loss_mask shape"):
        lm_example([1, 2, 3], loss_mask=[1, 1])


HAND_DOCS = [[2, 10, 11, 12, 3], [2, 20, 3], [2, 30, 31, 32, 33, 34, 35, 3], [2, 40, 3]]


def test_concat_packing_by_hand():
    rows = _rows_as_lists(pack_examples([lm_example(d) for d in HAND_DOCS], seq_len=6, pad_id=0))
    assert rows == [
        {"inputs": [2, 10, 11, 12, 2, 20], "targets": [10, 11, 12, 3, 20, 3], "loss_mask": [1] * 6,
         "positions": [0, 1, 2, 3, 0, 1], "segment_ids": [1, 1, 1, 1, 2, 2]},
        {"inputs": [2, 30, 31, 32, 33, 34], "targets": [30, 31, 32, 33, 34, 35], "loss_mask": [1] * 6,
         "positions": [0, 1, 2, 3, 4, 5], "segment_ids": [1, 1, 1, 1, 1, 1]},
        # The third document continues as a new segment; the stream ends, so the last row is padded (segment 0).
        {"inputs": [35, 2, 40, 0, 0, 0], "targets": [3, 40, 3, 0, 0, 0], "loss_mask": [1, 1, 1, 0, 0, 0],
         "positions": [0, 0, 1, 0, 0, 0], "segment_ids": [1, 2, 2, 0, 0, 0]},
    ]


def test_first_fit_packing_by_hand_with_assistant_only_mask():
    examples = [lm_example(d) for d in HAND_DOCS[:3]] + [lm_example([2, 40, 41, 3], loss_mask=[0, 0, 1, 1])]
    rows = _rows_as_lists(pack_examples(examples, seq_len=6, mode="first_fit", bins=2, pad_id=9))
    assert rows == [
        {"inputs": [2, 10, 11, 12, 2, 20], "targets": [10, 11, 12, 3, 20, 3], "loss_mask": [1] * 6,
         "positions": [0, 1, 2, 3, 0, 1], "segment_ids": [1, 1, 1, 1, 2, 2]},
        # 7 shifted tokens > 6: truncated (never split in first_fit), alone in the second bin.
        {"inputs": [2, 30, 31, 32, 33, 34], "targets": [30, 31, 32, 33, 34, 35], "loss_mask": [1] * 6,
         "positions": [0, 1, 2, 3, 4, 5], "segment_ids": [1, 1, 1, 1, 1, 1]},
        # The last example fit no open bin, so the group was emitted and it starts a new one.
        {"inputs": [2, 40, 41, 9, 9, 9], "targets": [40, 41, 3, 9, 9, 9], "loss_mask": [0, 1, 1, 0, 0, 0],
         "positions": [0, 1, 2, 0, 0, 0], "segment_ids": [1, 1, 1, 0, 0, 0]},
    ]


def _tagged_docs(n, seed=0, max_len=40):
    """Document k's tokens are 1000*(k+1) + j, so every token says which document it came from."""
    rng = np.random.default_rng(seed)
    return [1000 * (k + 1) + np.arange(rng.integers(1, max_len)) for k in range(n)]


@pytest.mark.parametrize("mode", ["concat", "first_fit"])
def test_no_segment_mixes_documents_and_positions_restart(mode):
    docs = _tagged_docs(60)
    rows = pack_examples([lm_example(d) for d in docs], seq_len=16, mode=mode, bins=3)
    for r in rows:
        seg, pos = r["segment_ids"], r["positions"]
        assert np.all(np.diff(seg[seg > 0]) >= 0) and np.all(seg[len(seg[seg > 0]):] == 0)  # padding at the end
        for s in np.unique(seg[seg > 0]):
            idx = np.flatnonzero(seg == s)
            assert np.array_equal(idx, np.arange(idx[0], idx[-1] + 1))  # contiguous
            assert np.array_equal(pos[idx], np.arange(len(idx)))
            owners = np.concatenate([r["inputs"][idx], r["targets"][idx]]) // 1000
            assert len(set(owners.tolist())) == 1  # inputs and targets of a segment all from one document
            # inside a segment the next input is this position's target
            assert np.array_equal(r["inputs"][idx][1:], r["targets"][idx][:-1])
        assert np.all(r["loss_mask"][seg == 0] == 0)


def test_concat_loses_no_target_and_keeps_order():
    docs = _tagged_docs(50, seed=1)
    rows = pack_examples([lm_example(d) for d in docs], seq_len=13)
    targets = np.concatenate([r["targets"][r["segment_ids"] > 0] for r in rows])
    assert np.array_equal(targets, np.concatenate([d[1:] for d in docs]))
    assert all(r["segment_ids"].min() > 0 for r in rows[:-1])  # only the final row has padding


def _iterate_with_states(ds, n):
    it = iter(ds)
    out = []
    for _ in range(n):
        state = json.loads(json.dumps(it.get_state()))
        out.append((state, next(it)))
    return out


@pytest.mark.parametrize("mode", ["concat", "first_fit"])
def test_state_restores_the_exact_next_rows(mode):
    docs = [lm_example(d) for d in _tagged_docs(80, seed=2, max_len=30)]
    source = grain.MapDataset.source(docs).repeat(3).to_iter_dataset(grain.ReadOptions(num_threads=0))
    ds = PackedDataset(source, seq_len=12, mode=mode, bins=3)
    reference = _iterate_with_states(ds, 60)
    for k in (0, 1, 5, 17, 33, 50):
        it = iter(ds)
        it.set_state(reference[k][0])
        for j in range(k, min(k + 6, len(reference))):
            got = next(it)
            for key in got:
                assert np.array_equal(got[key], reference[j][1][key]), (mode, k, j, key)


def test_stack_rows_and_bad_arguments():
    rows = pack_examples([lm_example(d) for d in HAND_DOCS], seq_len=6)
    batch = stack_rows(rows)
    assert {k: v.shape for k, v in batch.items()} == {k: (3, 6) for k in
                                                     ("inputs", "targets", "loss_mask", "positions", "segment_ids")}
    with pytest.raises(ValueError, match="packing mode"):
        pack_examples([], seq_len=6, mode="best")
