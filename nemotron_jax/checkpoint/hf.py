"""Hugging Face `NemotronForCausalLM` and Megatron/NeMo checkpoints <-> nemotron_jax parameters.

HF stores torch linears as [out, in]; we store einsum-ready [in, ...out] tensors and stack layers on axis 0:

    q_proj [N*H, D]  -> attn.wq [D, N, H]        k_proj/v_proj [K*H, D] -> attn.wk/wv [D, K, H]
    o_proj [D, N*H]  -> attn.wo [N, H, D]        up_proj [F, D] -> mlp.w_up [D, F]; down_proj [D, F] -> w_down [F, D]
    *_layernorm.{weight,bias} -> *_norm.{scale,bias}   (both zero-centred: applied scale is 1 + w)
    embed_tokens [V, D] -> embed.embedding [V, D]  lm_head [V, D] -> lm_head.kernel [D, V]

Megatron/NeMo fuse QKV as [(N + 2K) * H, D], grouped per KV head as [N/K query heads, k, v].
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

from nemotron_jax.config import ConfigError, ModelConfig

Params = dict[str, Any]
HF_ARCH = "NemotronForCausalLM"


class CheckpointMismatch(ValueError):
    """A checkpoint whose tensor names or shapes do not match the model config; the message names the key."""


# ----------------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------------


def _rope_fields(d: Mapping[str, Any]) -> tuple[float, float]:
    """(rope base, rotary fraction) from any of the spellings: rope_parameters{...}, partial_rotary_factor,
    rope_percent (old configs), rope_theta."""
    rp = d.get("rope_parameters") or {}
    base = rp.get("rope_theta", d.get("rope_theta", 10000.0))
    frac = rp.get("partial_rotary_factor", d.get("partial_rotary_factor", d.get("rope_percent", 0.5)))
    return float(base), float(frac)


def config_from_hf(d: Mapping[str, Any], **overrides: Any) -> ModelConfig:
    """ModelConfig from an HF `config.json` dict (model_type "nemotron")."""
    act = d.get("hidden_act", "relu2")
    if act != "relu2":
        raise ConfigError(f"hidden_act={act!r}: Nemotron-4 uses squared ReLU ('relu2'); this is not a Nemotron config")
    if d.get("tie_word_embeddings", False):
        raise ConfigError("tie_word_embeddings=True: Nemotron-4 has an untied output matrix; untie it before import")
    heads = int(d["num_attention_heads"])
    base, frac = _rope_fields(d)
    fields = dict(
        name=str(d.get("_name_or_path") or d.get("model_type", "nemotron")) or "nemotron",
        vocab_size=int(d["vocab_size"]), num_layers=int(d["num_hidden_layers"]), d_model=int(d["hidden_size"]),
        num_heads=heads, num_kv_heads=int(d.get("num_key_value_heads") or heads),
        head_dim=int(d.get("head_dim") or d["hidden_size"] // heads), ffn_dim=int(d["intermediate_size"]),
        max_seq_len=int(d.get("max_position_embeddings", 4096)), rotary_fraction=frac, rope_base=base,
        norm_eps=float(d.get("norm_eps", d.get("layer_norm_eps", 1e-5))),
        init_std=float(d.get("initializer_range", 0.02)),
    )
    for key in ("bos_token_id", "eos_token_id"):
        if isinstance(d.get(key), int):
            fields[key.replace("_token", "")] = d[key]
    return ModelConfig(**{**fields, **overrides})


def config_to_hf(cfg: ModelConfig, dtype: str = "float32") -> dict[str, Any]:
    """An HF config dict that `transformers.NemotronForCausalLM` loads (both rotary spellings written)."""
    return {
        "architectures": [HF_ARCH], "model_type": "nemotron", "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model, "intermediate_size": cfg.ffn_dim, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.max_seq_len, "norm_eps": cfg.norm_eps, "hidden_act": "relu2",
        "initializer_range": cfg.init_std, "rope_theta": cfg.rope_base, "partial_rotary_factor": cfg.rotary_fraction,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_base,
                            "partial_rotary_factor": cfg.rotary_fraction},
        "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0, "tie_word_embeddings": False,
        "bos_token_id": cfg.bos_id, "eos_token_id": cfg.eos_id, "torch_dtype": dtype, "dtype": dtype,
        "use_cache": True,
    }


# ----------------------------------------------------------------------------------------------------------------
# Tensor name/layout tables
# ----------------------------------------------------------------------------------------------------------------

# (our path inside a layer, HF suffix, torch->ours, ours->torch); shapes: see the module docstring.
def _layer_table(cfg: ModelConfig) -> list[tuple[tuple[str, str], str, Callable, Callable]]:
    d, n, k, h = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    return [
        (("attn", "wq"), "self_attn.q_proj.weight", lambda w: w.T.reshape(d, n, h), lambda p: p.reshape(d, n * h).T),
        (("attn", "wk"), "self_attn.k_proj.weight", lambda w: w.T.reshape(d, k, h), lambda p: p.reshape(d, k * h).T),
        (("attn", "wv"), "self_attn.v_proj.weight", lambda w: w.T.reshape(d, k, h), lambda p: p.reshape(d, k * h).T),
        (("attn", "wo"), "self_attn.o_proj.weight", lambda w: w.T.reshape(n, h, d), lambda p: p.reshape(n * h, d).T),
        (("mlp", "w_up"), "mlp.up_proj.weight", lambda w: w.T, lambda p: p.T),
        (("mlp", "w_down"), "mlp.down_proj.weight", lambda w: w.T, lambda p: p.T),
        (("attn_norm", "scale"), "input_layernorm.weight", lambda w: w, lambda p: p),
        (("attn_norm", "bias"), "input_layernorm.bias", lambda w: w, lambda p: p),
        (("mlp_norm", "scale"), "post_attention_layernorm.weight", lambda w: w, lambda p: p),
        (("mlp_norm", "bias"), "post_attention_layernorm.bias", lambda w: w, lambda p: p),
    ]


def expected_hf_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name an HF Nemotron checkpoint for `cfg` must hold, with its torch shape."""
    d, n, k, h, f, v = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.ffn_dim, cfg.vocab_size
    per_layer = {
        "self_attn.q_proj.weight": (n * h, d), "self_attn.k_proj.weight": (k * h, d),
        "self_attn.v_proj.weight": (k * h, d), "self_attn.o_proj.weight": (d, n * h),
        "mlp.up_proj.weight": (f, d), "mlp.down_proj.weight": (d, f),
        "input_layernorm.weight": (d,), "input_layernorm.bias": (d,),
        "post_attention_layernorm.weight": (d,), "post_attention_layernorm.bias": (d,),
    }
    shapes = {"model.embed_tokens.weight": (v, d), "lm_head.weight": (v, d), "model.norm.weight": (d,),
              "model.norm.bias": (d,)}
    for i in range(cfg.num_layers):
        shapes.update({f"model.layers.{i}.{name}": s for name, s in per_layer.items()})
    return shapes


def _check_names_and_shapes(tensors: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]],
                            what: str) -> None:
    missing = [k for k in expected if k not in tensors]
    if missing:
        raise CheckpointMismatch(f"{what}: missing tensor {missing[0]!r} ({len(missing)} missing in all; "
                                 f"the checkpoint may be for another architecture or a different number of layers)")
    unexpected = sorted(k for k in tensors if k not in expected and "rotary_emb" not in k)
    if unexpected:
        raise CheckpointMismatch(f"{what}: unexpected tensor {unexpected[0]!r} ({len(unexpected)} in all); "
                                 f"the config may have fewer layers than the checkpoint")
    for name, shape in expected.items():
        got = tuple(np.shape(tensors[name]))
        if got != tuple(shape):
            raise CheckpointMismatch(f"{what}: tensor {name!r} has shape {got}, the config implies {tuple(shape)}")


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def params_from_hf(state_dict: Mapping[str, Any], cfg: ModelConfig) -> Params:
    """fp32 nemotron_jax params from an HF state dict (numpy arrays, or anything np.asarray accepts)."""
    _check_names_and_shapes(state_dict, expected_hf_shapes(cfg), "HF checkpoint")
    layers: dict[str, dict[str, np.ndarray]] = {}
    for (mod, leaf), suffix, to_ours, _ in _layer_table(cfg):
        stacked = [to_ours(_f32(state_dict[f"model.layers.{i}.{suffix}"])) for i in range(cfg.num_layers)]
        layers.setdefault(mod, {})[leaf] = np.stack(stacked)
    return {
        "embed": {"embedding": _f32(state_dict["model.embed_tokens.weight"])},
        "layers": layers,
        "final_norm": {"scale": _f32(state_dict["model.norm.weight"]), "bias": _f32(state_dict["model.norm.bias"])},
        "lm_head": {"kernel": _f32(state_dict["lm_head.weight"]).T.copy()},
    }


def params_to_hf(params: Params, cfg: ModelConfig, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """HF-named tensors in torch [out, in] layout (contiguous numpy, `dtype`)."""
    cast = lambda x: np.ascontiguousarray(np.asarray(x, dtype=np.float32).astype(dtype))
    out = {"model.embed_tokens.weight": cast(params["embed"]["embedding"]),
           "lm_head.weight": cast(np.asarray(params["lm_head"]["kernel"]).T),
           "model.norm.weight": cast(params["final_norm"]["scale"]),
           "model.norm.bias": cast(params["final_norm"]["bias"])}
    for (mod, leaf), suffix, _, to_hf in _layer_table(cfg):
        stacked = np.asarray(params["layers"][mod][leaf])
        for i in range(cfg.num_layers):
            out[f"model.layers.{i}.{suffix}"] = cast(to_hf(stacked[i]))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Megatron / NeMo (mcore) layout
# ----------------------------------------------------------------------------------------------------------------


def split_fused_qkv(w: np.ndarray, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[(N + 2K) * H, D] grouped per KV head as [G query heads, k, v] -> q [N*H, D], k [K*H, D], v [K*H, D]."""
    n, k, h, g = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.q_per_kv
    expect = ((n + 2 * k) * h, cfg.d_model)
    if tuple(w.shape) != expect:
        raise CheckpointMismatch(f"fused QKV has shape {tuple(w.shape)}, the config implies {expect}")
    grouped = w.reshape(k, g + 2, h, cfg.d_model)
    q = grouped[:, :g].reshape(n * h, cfg.d_model)  # query head n = kv_group * G + j
    return q, grouped[:, g].reshape(k * h, cfg.d_model), grouped[:, g + 1].reshape(k * h, cfg.d_model)


def fuse_qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Inverse of `split_fused_qkv`."""
    kv, g, h, d = cfg.num_kv_heads, cfg.q_per_kv, cfg.head_dim, cfg.d_model
    grouped = np.concatenate([q.reshape(kv, g, h, d), k.reshape(kv, 1, h, d), v.reshape(kv, 1, h, d)], axis=1)
    return grouped.reshape((cfg.num_heads + 2 * kv) * h, d)


# mcore name (relative to the layer) -> HF suffix; the two layer norms live inside TE's fused linears.
_MEGATRON_LAYER = {
    "self_attention.linear_proj.weight": "self_attn.o_proj.weight",
    "self_attention.linear_qkv.layer_norm_weight": "input_layernorm.weight",
    "self_attention.linear_qkv.layer_norm_bias": "input_layernorm.bias",
    "mlp.linear_fc1.weight": "mlp.up_proj.weight",
    "mlp.linear_fc1.layer_norm_weight": "post_attention_layernorm.weight",
    "mlp.linear_fc1.layer_norm_bias": "post_attention_layernorm.bias",
    "mlp.linear_fc2.weight": "mlp.down_proj.weight",
}
_MEGATRON_GLOBAL = {
    "embedding.word_embeddings.weight": "model.embed_tokens.weight",
    "decoder.final_layernorm.weight": "model.norm.weight",
    "decoder.final_layernorm.bias": "model.norm.bias",
    "output_layer.weight": "lm_head.weight",
}


def megatron_to_hf_names(state_dict: Mapping[str, Any], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Rename a Megatron-core/NeMo state dict (optionally prefixed `model.`) to HF names, splitting fused QKV.

    Megatron's LayerNorm1p also stores zero-centred scales, so norms carry over unchanged.
    """
    sd = {k.removeprefix("model."): v for k, v in state_dict.items() if not k.endswith("_extra_state")}
    out: dict[str, np.ndarray] = {}
    for src, dst in _MEGATRON_GLOBAL.items():
        if src not in sd:
            raise CheckpointMismatch(f"Megatron checkpoint: missing tensor {src!r}")
        out[dst] = np.asarray(sd[src])
    for i in range(cfg.num_layers):
        prefix = f"decoder.layers.{i}."
        qkv_name = prefix + "self_attention.linear_qkv.weight"
        if qkv_name not in sd:
            raise CheckpointMismatch(f"Megatron checkpoint: missing tensor {qkv_name!r}")
        q, k, v = split_fused_qkv(np.asarray(sd[qkv_name]), cfg)
        out.update({f"model.layers.{i}.self_attn.{n}_proj.weight": t for n, t in zip("qkv", (q, k, v))})
        for src, dst in _MEGATRON_LAYER.items():
            if prefix + src not in sd:
                raise CheckpointMismatch(f"Megatron checkpoint: missing tensor {prefix + src!r}")
            out[f"model.layers.{i}.{dst}"] = np.asarray(sd[prefix + src])
    return out


def params_from_megatron(state_dict: Mapping[str, Any], cfg: ModelConfig) -> Params:
    """fp32 params from a Megatron-core / NeMo GPT state dict (fused QKV, TE-fused layer norms)."""
    return params_from_hf(megatron_to_hf_names(state_dict, cfg), cfg)


def params_to_megatron(params: Params, cfg: ModelConfig, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """The inverse of `params_from_megatron` (mcore names, fused QKV)."""
    hf = params_to_hf(params, cfg, dtype)
    out = {src: hf[dst] for src, dst in _MEGATRON_GLOBAL.items()}
    for i in range(cfg.num_layers):
        prefix, hp = f"decoder.layers.{i}.", f"model.layers.{i}."
        q, k, v = (hf[f"{hp}self_attn.{n}_proj.weight"] for n in "qkv")
        out[prefix + "self_attention.linear_qkv.weight"] = fuse_qkv(q, k, v, cfg)
        out.update({prefix + src: hf[hp + dst] for src, dst in _MEGATRON_LAYER.items()})
    return out


# ----------------------------------------------------------------------------------------------------------------
# Folders: config.json + model.safetensors or sharded model-0000i-of-0000n.safetensors with an index
# ----------------------------------------------------------------------------------------------------------------


def read_safetensors_folder(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of an HF folder: one `model.safetensors`, or the shards listed in its index json."""
    from safetensors import safe_open

    path = Path(path)
    index = path / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted(set(weight_map.values()))
    elif (path / "model.safetensors").exists():
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{path}: no model.safetensors or model.safetensors.index.json "
                                f"(torch .bin checkpoints are not read; re-save with safe_serialization=True)")
    tensors: dict[str, np.ndarray] = {}
    for name in files:
        with safe_open(str(path / name), framework="numpy") as f:
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    return tensors


def load_hf_folder(path: str | os.PathLike, **config_overrides: Any) -> tuple[ModelConfig, Params]:
    """(ModelConfig, fp32 params) from a local HF NemotronForCausalLM folder."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(f"{path}: no config.json (is this an HF model folder?)")
    cfg = config_from_hf(json.loads(cfg_file.read_text()), **config_overrides)
    return cfg, params_from_hf(read_safetensors_folder(path), cfg)


def _shards(tensors: Mapping[str, np.ndarray], max_bytes: int) -> list[dict[str, np.ndarray]]:
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, t in tensors.items():
        if shards[-1] and size + t.nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += t.nbytes
    return shards


def save_hf_folder(params: Params, cfg: ModelConfig, path: str | os.PathLike, *, dtype: str = "float32",
                   max_shard_bytes: int = 5 * 2**30) -> Path:
    """Write config.json + safetensors (sharded with an index past `max_shard_bytes`) that HF transformers loads."""
    import ml_dtypes
    from safetensors.numpy import save_file

    np_dtype = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}[dtype]
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = params_to_hf(params, cfg, np_dtype)
    shards = _shards(tensors, max_shard_bytes)
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(path / "model.safetensors"), metadata=meta)
    else:
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(path / fname), metadata=meta)
            weight_map.update({k: fname for k in shard})
        index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())}, "weight_map": weight_map}
        (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (path / "config.json").write_text(json.dumps(config_to_hf(cfg, dtype), indent=2))
    return path


# ----------------------------------------------------------------------------------------------------------------
# `nemotron-jax convert`
# ----------------------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nemotron-jax convert",
                                description="Convert checkpoints between HF / Megatron and nemotron_jax params.")
    sub = p.add_subparsers(dest="direction", required=True)
    a = sub.add_parser("hf-to-jax", help="HF NemotronForCausalLM folder -> nemotron_jax params checkpoint")
    a.add_argument("src")
    a.add_argument("dst")
    b = sub.add_parser("jax-to-hf", help="nemotron_jax params checkpoint -> HF folder")
    b.add_argument("src")
    b.add_argument("dst")
    b.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    return p


def cli_main(argv: Optional[Iterable[str]] = None) -> int:
    from nemotron_jax.checkpoint import params_io

    args = _parser().parse_args(list(argv or []))
    if args.direction == "hf-to-jax":
        cfg, params = load_hf_folder(args.src)
        params_io.save_params(args.dst, params, cfg)
    else:
        cfg, params = params_io.load_params(args.src)
        save_hf_folder(params, cfg, args.dst, dtype=args.dtype)
    print(f"wrote {args.dst}")
    return 0
