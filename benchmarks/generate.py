"""Greedy decode tokens/s of the KV-cache sampler vs Hugging Face `generate` (torch, sdpa, use_cache), same weights.

    python benchmarks/generate.py [--preset bench-cpu] [--prompt-len 64] [--new-tokens 128] [--batches 1 8]

Both run fp32 greedy decoding of random-token prompts through the same random weights (converted with
checkpoint/hf.py `params_to_hf`); eos is ignored by both so every row produces exactly --new-tokens tokens. The
script checks that the outputs match token for token and prints tokens/s: after one warm-up run of each (compile
time excluded, reported separately) the two alternate for --repeats timed runs, so load from other processes on a
shared machine hits both alike; figures are medians, and the speed-up is the median of the per-pair ratios. Without
torch/transformers it reports the JAX figures alone. On a GPU machine it benchmarks whatever `jax.devices()[0]` is
(HF stays on CPU unless --hf-gpu). On a GPU, fp32 matmuls default to TF32 in XLA but not in torch: pass
--matmul-precision highest for a token-for-token comparison in fp32; in bf16 both run bf16 and rows may part ways.

    python benchmarks/generate.py --hf-gpu --matmul-precision highest --batches 1 8 64                 # GPU parity
    python benchmarks/generate.py --preset nemotron-1b --dtype bfloat16 --hf-gpu --batches 1 8 64       # GPU speed
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from nemotron_jax import config as C
from nemotron_jax.inference.sampler import Sampler, SamplingParams
from nemotron_jax.model import init_params


def run_jax(sampler: Sampler, prompts: np.ndarray, new: int) -> tuple[float, np.ndarray]:
    """(seconds, generated tokens [B, new]) of one greedy generate call."""
    sp = SamplingParams(max_new_tokens=new, temperature=0.0, ignore_eos=True)
    t0 = time.perf_counter()
    out = sampler.generate(prompts.tolist(), sp)
    return time.perf_counter() - t0, np.array([r[0].token_ids for r in out])


def hf_model(params, cfg, device: str, dtype: str):
    import torch
    from transformers import NemotronConfig, NemotronForCausalLM

    from nemotron_jax.checkpoint.hf import config_to_hf, params_to_hf

    hf_cfg = NemotronConfig(**{k: v for k, v in config_to_hf(cfg).items() if k != "architectures"})
    model = NemotronForCausalLM._from_config(hf_cfg, attn_implementation="sdpa", dtype=getattr(torch, dtype))
    state = {k: torch.from_numpy(np.ascontiguousarray(v)).to(getattr(torch, dtype))
             for k, v in params_to_hf(params, cfg).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [m for m in missing if "rotary" not in m] or unexpected:
        raise RuntimeError(f"HF weight mismatch: missing {missing}, unexpected {unexpected}")
    return model.eval().to(device)


def run_hf(model, prompts: np.ndarray, new: int, device: str) -> tuple[float, np.ndarray]:
    """(seconds, generated tokens [B, new]) of one HF greedy generate call."""
    import torch

    ids = torch.from_numpy(prompts.astype(np.int64)).to(device)
    kw = dict(max_new_tokens=new, min_new_tokens=None, do_sample=False, use_cache=True, eos_token_id=None,
              pad_token_id=0, attention_mask=torch.ones_like(ids))
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model.generate(ids, **kw)[:, prompts.shape[1]:].cpu().numpy()  # .cpu() waits for the device
        return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="bench-cpu")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=64, help="decode steps per device call")
    ap.add_argument("--dtype", default=None, help="compute dtype override (e.g. bfloat16 on GPU)")
    ap.add_argument("--no-hf", action="store_true")
    ap.add_argument("--hf-gpu", action="store_true")
    ap.add_argument("--hf-threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--matmul-precision", default=None, help="jax_default_matmul_precision (GPU fp32: highest)")
    args = ap.parse_args()
    if args.matmul_precision:
        jax.config.update("jax_default_matmul_precision", args.matmul_precision)

    overrides = {"dtype": args.dtype} if args.dtype else {}
    cfg = C.model_preset(args.preset, **overrides)
    params = init_params(cfg, jax.random.key(0))
    sampler = Sampler(params, cfg, chunk=args.chunk)
    print(f"device {jax.devices()[0].device_kind} ({jax.default_backend()}), model {cfg.name} ({cfg.dtype}), "
          f"prompt {args.prompt_len}, new tokens {args.new_tokens}, chunk {args.chunk}")
    model, device = None, "cuda" if args.hf_gpu else "cpu"
    if not args.no_hf:
        try:
            import torch

            if args.hf_threads:
                torch.set_num_threads(args.hf_threads)
            model = hf_model(params, cfg, device, cfg.dtype)
            print(f"HF: torch {torch.__version__} on {device} ({cfg.dtype}), {torch.get_num_threads()} threads, sdpa, "
                  f"use_cache")
        except (ImportError, RuntimeError, AssertionError) as e:  # no torch, or a torch without this device
            model = None
            print(f"HF comparison skipped ({type(e).__name__}: {e})")
    rng = np.random.default_rng(0)
    for b in args.batches:
        prompts = rng.integers(10, cfg.vocab_size, (b, args.prompt_len), dtype=np.int64).astype(np.int32)
        first, ours = run_jax(sampler, prompts, args.new_tokens)
        if model is not None:
            run_hf(model, prompts, args.new_tokens, device)  # warm-up
        tj, th, ratios = [], [], []
        for _ in range(args.repeats):  # alternate, so both see the same background load
            tj.append(run_jax(sampler, prompts, args.new_tokens)[0])
            if model is not None:
                t, theirs = run_hf(model, prompts, args.new_tokens, device)
                th.append(t)
                ratios.append(t / tj[-1])
        t = statistics.median(tj)
        tps = b * args.new_tokens / t
        line = f"batch {b}: jax {tps:8.1f} tok/s ({t * 1e3:.0f} ms; first call incl. compile {first:.1f} s)"
        if model is not None:
            htps = b * args.new_tokens / statistics.median(th)
            same = int((ours == theirs).all(axis=1).sum())
            first_diff = [int(np.argmax(o != h)) for o, h in zip(ours, theirs) if (o != h).any()]
            line += (f" | HF {htps:8.1f} tok/s ({statistics.median(th) * 1e3:.0f} ms) | speed-up "
                     f"{statistics.median(ratios):.2f}x (per-pair {min(ratios):.2f}-{max(ratios):.2f}) | rows "
                     f"identical {same}/{b}" + (f" (first differences at steps {first_diff})" if first_diff else ""))
        print(line, flush=True)


if __name__ == "__main__":
    main()
