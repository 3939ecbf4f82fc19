"""Batch-size ramp: both Megatron forms against hand-worked tables, divisibility rules, and step/sample counting."""

import pytest

from nemotron_jax.config import BatchConfig, ConfigError
from nemotron_jax.train.ramp import make_ramp, parse_count, parse_step_ramp


def test_parse_counts_and_paper_ramp():
    assert parse_count("768") == 768
    assert parse_count("200B") == 200 * 10**9
    assert parse_count("1.5M") == 1_500_000
    assert parse_count("2k") == 2000
    assert parse_step_ramp("0:768 200B:1536 400B:2304") == ((0, 768), (200 * 10**9, 1536), (400 * 10**9, 2304))
    for bad in ("0:768 200X:1536", "100:8", "0:8 5:16 5:32", "0-8"):
        with pytest.raises(ConfigError):
            parse_step_ramp(bad)


def test_linear_ramp_table():
    # start 32, +32 every 300/3 = 100 samples, to 128; microbatch 4 x DP 2 = 8 rows per accumulation step.
    cfg = BatchConfig(global_batch=128, seq_len=16, micro_batch=4, ramp_start=32, ramp_increment=32, ramp_samples=300)
    ramp = make_ramp(cfg, data_parallel=2, seq_len=16)
    table = {0: 32, 99: 32, 100: 64, 199: 64, 200: 96, 299: 96, 300: 128, 10**6: 128}
    assert {c: ramp.batch_at(c) for c in table} == table
    assert {c: ramp.accum_at(c) for c in table} == {c: b // 8 for c, b in table.items()}
    assert ramp.reachable_batches() == (32, 64, 96, 128)
    # consumed: 0 -32-> 32 -32-> 64 -32-> 96 -32-> 128 -64-> 192 -64-> 256 -96-> 352 -128-> 480
    assert [ramp.samples_after(s) for s in range(9)] == [0, 32, 64, 96, 128, 192, 256, 352, 480]
    assert ramp.steps_for_samples(480) == 8
    assert ramp.steps_for_samples(481) == 9
    assert ramp.steps_for_samples(480 + 128 * 10) == 18


def test_step_ramp_in_tokens_table():
    # thresholds in tokens at seq_len 100: 0, 1K -> 10 samples, 2.05K -> ceil(20.5) = 21 samples.
    cfg = BatchConfig(global_batch=32, seq_len=100, micro_batch=2, ramp="0:8 1K:16 2.05K:32", ramp_unit="tokens")
    ramp = make_ramp(cfg, data_parallel=2, seq_len=100)
    table = {0: 8, 9: 8, 10: 16, 20: 16, 21: 32, 500: 32}
    assert {c: ramp.batch_at(c) for c in table} == table
    assert {c: ramp.accum_at(c) for c in table} == {0: 2, 9: 2, 10: 4, 20: 4, 21: 8, 500: 8}
    # 0 -8-> 8 -8-> 16 -16-> 32 -32-> 64
    assert [ramp.samples_after(s) for s in range(5)] == [0, 8, 16, 32, 64]


def test_paper_ramp_in_samples_of_4096_tokens():
    cfg = BatchConfig(global_batch=2304, seq_len=4096, micro_batch=1, ramp="0:768 200B:1536 400B:2304",
                      ramp_unit="tokens")
    ramp = make_ramp(cfg, data_parallel=64, seq_len=4096)
    first = -(-200 * 10**9 // 4096)  # 48_828_125 samples
    assert ramp.batch_at(first - 1) == 768 and ramp.batch_at(first) == 1536
    assert ramp.accum_at(0) == 12 and ramp.accum_at(10**12) == 36


def test_constant_batch():
    ramp = make_ramp(BatchConfig(global_batch=16, seq_len=8, micro_batch=2), data_parallel=4, seq_len=8)
    assert ramp.accum_at(0) == ramp.accum_at(10**9) == 2
    assert ramp.steps_for_samples(33) == 3 and ramp.samples_after(3) == 48


def test_megatron_divisibility_errors():
    with pytest.raises(ConfigError, match=r"global batch size \(48\) is not divisible by micro-batch-size \(4\) "
                                          r"times data parallel size \(8\)"):
        make_ramp(BatchConfig(global_batch=48, seq_len=8, micro_batch=4), data_parallel=8, seq_len=8)
    with pytest.raises(ConfigError, match=r"interval \(96\) to be divisible by global batch size increment \(40\)"):
        make_ramp(BatchConfig(global_batch=128, seq_len=8, ramp_start=32, ramp_increment=40, ramp_samples=100),
                  data_parallel=1, seq_len=8)
    with pytest.raises(ConfigError, match=r"global batch size \(20\) is not divisible"):  # an intermediate batch
        make_ramp(BatchConfig(global_batch=40, seq_len=8, micro_batch=8, ramp="0:20 100:40"), data_parallel=1,
                  seq_len=8)
    with pytest.raises(ConfigError, match="set batch.global_batch=64"):
        make_ramp(BatchConfig(global_batch=32, seq_len=8, ramp="0:16 100:64"), data_parallel=1, seq_len=8)
    with pytest.raises(ConfigError, match="not both"):
        BatchConfig(global_batch=32, seq_len=8, ramp="0:16 100:32", ramp_start=16, ramp_increment=16)
