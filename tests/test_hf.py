"""HF / Megatron interop: logit parity with a real transformers model (fixture), round trips, bad checkpoints."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemotron_jax import config as C
from nemotron_jax.checkpoint import hf
from nemotron_jax.model import forward, init_params

FIXTURE = Path(__file__).parent / "fixtures" / "hf_tiny"


def test_logit_parity_with_transformers_fixture():
    """The fixture was written by tools/make_hf_fixture.py from a random NemotronForCausalLM (torch, fp32)."""
    cfg, params = hf.load_hf_folder(FIXTURE)
    assert (cfg.head_dim, cfg.num_kv_heads, cfg.rotary_dim) == (24, 2, 12)  # head_dim != hidden / heads
    assert float(np.abs(params["final_norm"]["bias"]).max()) > 0.1  # the fixture's norms are non-trivial
    ref = np.load(FIXTURE / "reference.npz")
    logits = forward(params, jnp.asarray(ref["tokens"]), cfg)
    np.testing.assert_allclose(np.asarray(logits), ref["logits"], atol=1e-4, rtol=0)


def test_round_trip_hf_state_dict_is_exact():
    cfg = json.loads((FIXTURE / "config.json").read_text())
    cfg = hf.config_from_hf(cfg)
    sd = hf.read_safetensors_folder(FIXTURE)
    back = hf.params_to_hf(hf.params_from_hf(sd, cfg), cfg)
    assert set(back) == set(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k], err_msg=k)


def test_config_spellings_of_rotary_fraction_and_missing_head_dim():
    base = json.loads((FIXTURE / "config.json").read_text())
    new_style = hf.config_from_hf(base)
    old = {k: v for k, v in base.items() if k not in ("rope_parameters",)}
    old.update(rope_percent=0.5, rope_theta=10000.0)
    assert hf.config_from_hf(old).rotary_fraction == new_style.rotary_fraction == 0.5
    top_level = {**old, "partial_rotary_factor": 0.25}
    del top_level["rope_percent"]
    assert hf.config_from_hf({**top_level, "head_dim": 32}).rotary_dim == 8
    no_head_dim = {**base, "head_dim": None, "hidden_size": 96, "num_attention_heads": 4}
    assert hf.config_from_hf(no_head_dim).head_dim == 24


def test_config_round_trip():
    cfg = C.toy_tiny()
    back = hf.config_from_hf(hf.config_to_hf(cfg))
    for f in ("vocab_size", "num_layers", "d_model", "num_heads", "num_kv_heads", "head_dim", "ffn_dim",
              "rotary_fraction", "rope_base", "norm_eps", "bos_id", "eos_id"):
        assert getattr(back, f) == getattr(cfg, f), f


@pytest.mark.parametrize("shard_bytes", [10**9, 20_000])  # one file; many shards with an index
def test_save_and_load_hf_folder(tmp_path, shard_bytes):
    cfg = C.toy_tiny()
    params = init_params(cfg, jax.random.key(0))
    hf.save_hf_folder(params, cfg, tmp_path, max_shard_bytes=shard_bytes)
    assert (tmp_path / "model.safetensors.index.json").exists() == (shard_bytes < 10**9)
    cfg2, params2 = hf.load_hf_folder(tmp_path)
    assert cfg2.head_dim == cfg.head_dim
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_bf16_export_is_close(tmp_path):
    cfg = C.toy_tiny()
    params = init_params(cfg, jax.random.key(0))
    hf.save_hf_folder(params, cfg, tmp_path, dtype="bfloat16")
    _, back = hf.load_hf_folder(tmp_path)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-2, atol=1e-6)


def test_megatron_fused_qkv_layout():
    cfg = C.toy_tiny()  # 4 query heads, 2 kv heads -> groups of [q, q, k, v]
    h, d = cfg.head_dim, cfg.d_model
    rows = lambda tag: np.full((h, d), tag, np.float32)
    fused = np.concatenate([rows(0), rows(1), rows(100), rows(200), rows(2), rows(3), rows(101), rows(201)])
    q, k, v = hf.split_fused_qkv(fused, cfg)
    assert [q[i * h, 0] for i in range(4)] == [0, 1, 2, 3]  # query head n = group * 2 + j
    assert [k[i * h, 0] for i in range(2)] == [100, 101] and [v[i * h, 0] for i in range(2)] == [200, 201]
    np.testing.assert_array_equal(hf.fuse_qkv(q, k, v, cfg), fused)


def test_megatron_round_trip_gives_same_logits():
    cfg, params = hf.load_hf_folder(FIXTURE)
    mg = hf.params_to_megatron(params, cfg)
    assert "decoder.layers.1.self_attention.linear_qkv.weight" in mg
    back = hf.params_from_megatron({"model." + k: v for k, v in mg.items()}, cfg)
    toks = jnp.arange(12)[None] % cfg.vocab_size
    np.testing.assert_array_equal(forward(back, toks, cfg), forward(params, toks, cfg))


def test_bad_checkpoints_name_the_key():
    cfg, _ = hf.load_hf_folder(FIXTURE)
    sd = hf.read_safetensors_folder(FIXTURE)
    missing = {k: v for k, v in sd.items() if k != "model.layers.1.mlp.up_proj.weight"}
    with pytest.raises(hf.CheckpointMismatch, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        hf.params_from_hf(missing, cfg)
    wrong = {**sd, "model.layers.0.self_attn.k_proj.weight": np.zeros((24, 64), np.float32)}
    with pytest.raises(hf.CheckpointMismatch, match=r"k_proj\.weight.*\(24, 64\).*\(48, 64\)"):
        hf.params_from_hf(wrong, cfg)
    with pytest.raises(hf.CheckpointMismatch, match="unexpected tensor 'model.layers.1"):
        hf.params_from_hf(sd, cfg.replace(num_layers=1))
    with pytest.raises(C.ConfigError, match="relu2"):
        hf.config_from_hf({**json.loads((FIXTURE / "config.json").read_text()), "hidden_act": "silu"})


def test_exported_folder_loads_in_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg, params = hf.load_hf_folder(FIXTURE)
    hf.save_hf_folder(params, cfg, tmp_path)
    model = transformers.NemotronForCausalLM.from_pretrained(tmp_path, torch_dtype=torch.float32,
                                                             attn_implementation="eager")
    ref = np.load(FIXTURE / "reference.npz")
    with torch.no_grad():
        out = model(torch.as_tensor(ref["tokens"], dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(out, ref["logits"], atol=1e-4)


def test_params_only_checkpoint_round_trip(tmp_path):
    from nemotron_jax.checkpoint import params_io

    cfg = C.toy_tiny()
    params = init_params(cfg, jax.random.key(0))
    params_io.save_params(tmp_path / "ck", params, cfg)
    cfg2, back = params_io.load_params(tmp_path / "ck")
    assert cfg2 == cfg
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), b)
