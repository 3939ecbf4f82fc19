"""Config presets match SPEC §1 exactly, and impossible configs fail early with a message that says how to fix it."""

import pytest

from nemotron_jax import config as C


def test_340b_preset_matches_spec():
    cfg = C.nemotron4_340b()
    assert (cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.num_kv_heads) == (96, 18432, 96, 8)
    assert (cfg.head_dim, cfg.ffn_dim, cfg.vocab_size, cfg.max_seq_len) == (192, 73728, 256_000, 4096)
    assert cfg.rotary_dim == 96 and cfg.rope_base == 10000.0 and cfg.norm_eps == 1e-5
    assert cfg.init_std == 0.0063 and cfg.q_per_kv == 12 and (cfg.bos_id, cfg.eos_id) == (2, 3)


def test_15b_preset_matches_spec():
    cfg = C.nemotron4_15b()
    assert (cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.num_kv_heads) == (32, 6144, 48, 8)
    assert (cfg.head_dim, cfg.ffn_dim, cfg.rotary_dim, cfg.init_std) == (128, 24576, 64, 0.0134)


@pytest.mark.parametrize("kw, needle", [
    (dict(num_heads=6, num_kv_heads=4), "not divisible by num_kv_heads"),
    (dict(head_dim=10, rotary_fraction=0.5), "even whole number"),
    (dict(head_dim=12, rotary_fraction=0.3), "even whole number"),
    (dict(remat="sometimes"), "not a known policy"),
    (dict(attention_impl="flash"), "attention_impl must be one of"),
    (dict(attention_impl="cudnn"), "needs dtype in"),  # toy-tiny: fp32, head_dim 12
    (dict(attention_impl="cudnn", dtype="bfloat16"), "head_dim a multiple of 8"),
    (dict(dtype="float8"), "dtype must be one of"),
    (dict(eos_id=500), "outside the vocabulary"),
    (dict(d_model=0), "must be positive"),
])
def test_invalid_model_configs_say_how_to_fix(kw, needle):
    with pytest.raises(C.ConfigError, match=needle):
        C.toy_tiny(**kw)


def test_auto_attention_is_cudnn_only_on_a_gpu_where_it_applies():
    big = C.nemotron4_340b()  # bf16, head_dim 192
    assert big.attention_impl == "auto"
    assert big.attention_core("gpu") == "cudnn" and big.attention_core("cpu") == "xla"
    assert big.replace(dtype="float32").attention_core("gpu") == "xla"  # cuDNN's kernel is half precision only
    assert C.toy_tiny(dtype="bfloat16").attention_core("gpu") == "xla"  # head_dim 12
    assert big.replace(attention_impl="fused").attention_core("gpu") == "fused"
    assert big.attention_core("gpu", "8.0") == "xla"  # head_dim 192: cuDNN's kernel takes it from Hopper on
    assert C.nemotron4_15b().attention_core("gpu", "8.0") == "cudnn"  # head_dim 128 runs on an A100
    assert C.nemotron4_15b().attention_core("gpu", "7.5") == "xla"  # no flash kernel before Ampere


def test_parallel_config_validation():
    with pytest.raises(C.ConfigError, match="at most one"):
        C.ParallelConfig(data=-1, tensor=-1)
    with pytest.raises(C.ConfigError, match="needs pipeline > 1"):
        C.ParallelConfig(virtual_stages=2)


def test_preset_lookup():
    assert C.model_preset("toy-small").name == "toy-small"
    with pytest.raises(C.ConfigError, match="known presets"):
        C.model_preset("gpt-5")
