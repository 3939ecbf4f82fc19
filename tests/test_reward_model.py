"""Reward head: reads the last real token of padded and packed sequences; LM init; score() batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemotron_jax import config
from nemotron_jax.model import forward_hidden, init_params
from nemotron_jax.model import heads

CFG = config.toy_tiny()


@pytest.fixture(scope="module")
def params():
    return heads.init_reward_params(CFG, jax.random.key(0))


def _by_hand(params, ids):
    """Independent: run the trunk on the sequence alone and apply W, b at its last position."""
    trunk = {k: params[k] for k in heads.TRUNK_KEYS}
    h = forward_hidden(trunk, jnp.asarray([ids], jnp.int32), CFG)[0, -1]
    return np.asarray(h, np.float64) @ np.asarray(params["reward_head"]["kernel"], np.float64) + \
        np.asarray(params["reward_head"]["bias"], np.float64)


def test_sequence_end_indices():
    seg = jnp.array([[1, 1, 2, 2, 2, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]])
    ends, valid = heads.sequence_end_indices(seg, 3)
    np.testing.assert_array_equal(ends, [[1, 4, 0], [5, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(valid, [[True, True, False], [True, False, False], [True, False, False]])


def test_head_reads_last_real_token_of_padded_and_packed_rows(params):
    a, b, c = [5, 9, 17, 33, 6], [7, 8, 21], [40, 41, 42, 43]
    # row 0: a then right padding; row 1: b and c packed with positions restarting
    tokens = jnp.array([a + [0, 0, 0, 0, 0, 0, 0], b + c + [0] * 5])
    seg = jnp.array([[1] * 5 + [0] * 7, [1] * 3 + [2] * 4 + [0] * 5])
    pos = jnp.array([list(range(5)) + [0] * 7, [0, 1, 2, 0, 1, 2, 3] + [0] * 5])
    attrs, valid = heads.reward_forward(params, tokens, CFG, positions=pos, segment_ids=seg, max_segments=2)
    assert attrs.shape == (2, 2, 5) and attrs.dtype == jnp.float32
    np.testing.assert_array_equal(valid, [[True, False], [True, True]])
    np.testing.assert_allclose(attrs[0, 0], _by_hand(params, a), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(attrs[1, 0], _by_hand(params, b), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(attrs[1, 1], _by_hand(params, c), rtol=1e-4, atol=1e-5)


def test_init_from_lm_checkpoint_drops_lm_head():
    lm = init_params(CFG, jax.random.key(1))
    rm = heads.reward_params_from_lm(lm, CFG, jax.random.key(2), num_attributes=3)
    assert set(rm) == {"embed", "layers", "final_norm", "reward_head"}
    assert rm["reward_head"]["kernel"].shape == (CFG.d_model, 3)
    np.testing.assert_array_equal(rm["reward_head"]["bias"], np.zeros(3))
    assert rm["embed"]["embedding"] is lm["embed"]["embedding"]
    axes = heads.reward_logical_axes(CFG, 3)
    assert jax.tree.structure(axes, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec)) == \
        jax.tree.structure(rm)
    with pytest.raises(KeyError, match="lack"):
        heads.reward_params_from_lm({"embed": {}}, CFG, jax.random.key(0))


def test_score_batches_and_aggregates(params):
    seqs = [[5, 9, 17], [3, 4, 5, 6, 7, 8, 9, 10], [11], [12, 13], [20, 21, 22, 23, 24]]
    out = heads.score(params, CFG, seqs, batch_size=2, pad_to_multiple=8)
    assert out["attributes"].shape == (5, 5) and out["reward"].shape == (5,)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(out["attributes"][i], _by_hand(params, s), rtol=1e-4, atol=1e-5)
    w = np.array([0.3, 0.74, 0.46, 0.47, -0.33])
    np.testing.assert_allclose(out["reward"], out["attributes"] @ w, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="max_seq_len"):
        heads.score(params, CFG, [[1] * (CFG.max_seq_len + 1)])


@pytest.mark.parametrize("layout", [dict(data=2, tensor=2), dict(data=2, pipeline=2, microbatches=2)],
                         ids=["dp2-tp2", "dp2-pp2"])
def test_score_sharded_like_a_train_step_equals_by_hand(params, layout):
    """A reward model too large for one device scores on a run's mesh: the same attributes as by hand."""
    seqs = [[5, 9, 17], [3, 4, 5, 6, 7, 8, 9, 10], [11], [12, 13], [20, 21, 22, 23, 24]]
    out = heads.score(params, CFG, seqs, batch_size=4, pad_to_multiple=8, parallel=config.ParallelConfig(**layout))
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(out["attributes"][i], _by_hand(params, s), rtol=1e-4, atol=1e-5)
    with pytest.raises(config.ConfigError, match="batch"):  # 3 rows do not split over data 2
        heads.score(params, CFG, seqs, batch_size=3, parallel=config.ParallelConfig(**layout))
