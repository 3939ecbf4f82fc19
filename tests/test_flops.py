"""FLOPs accounting: the paper's MFU column, and the per-token count against a hand sum."""

import pytest

from nemotron_jax import config as C
from nemotron_jax.train.flops import flops_per_token, forward_flops_per_token, mfu

# SPEC §2 batch-ramp table: (GPUs, batch of 4096-token sequences, iteration seconds, paper MFU %).
PAPER_ROWS = [(1536, 768, 10.3, 42.4), (3072, 1536, 10.3, 42.3), (6144, 2304, 8.0, 41.0)]


@pytest.mark.parametrize("gpus,batch,seconds,paper", PAPER_ROWS)
def test_paper_mfu_rows(gpus, batch, seconds, paper):
    got = 100 * mfu(C.nemotron4_340b(), seq_len=4096, global_batch=batch, step_time_s=seconds, num_devices=gpus,
                    peak_flops=989e12)
    assert abs(got - paper) < 0.3, f"MFU {got:.2f}% vs paper {paper}%"


def test_forward_flops_hand_sum():
    cfg = C.toy_tiny()  # D 32, N 4, K 2, H 12, F 64, V 128, L 2
    t = 16
    per_layer = 2 * 32 * (4 + 4) * 12 + 2 * 4 * 12 * 32 + 4 * 32 * 64 + 4 * t * 4 * 12
    assert forward_flops_per_token(cfg, t) == 2 * per_layer + 2 * 32 * 128
    assert flops_per_token(cfg, t) == 3 * forward_flops_per_token(cfg, t)


def test_340b_is_about_6n_plus_attention():
    # Matmul FLOPs ~ 6 x params (excluding the input embedding lookup) plus the attention term.
    cfg = C.nemotron4_340b()
    n_matmul = 331.6e9 + 4.72e9
    attn = 3 * 96 * 4 * 4096 * 96 * 192
    assert flops_per_token(cfg, 4096) == pytest.approx(6 * n_matmul + attn, rel=2e-3)


def test_mfu_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        mfu(C.toy_tiny(), seq_len=8, global_batch=1, step_time_s=0.0, num_devices=1)
