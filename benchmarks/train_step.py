"""Forward and train-step (fwd + bwd + AdamW) throughput: ours under several XLA CPU settings vs HF torch.

    python benchmarks/train_step.py                       # CPU: bench-cpu shape, seq 512, batch 8, fp32
    python benchmarks/train_step.py --variants default,onednn --steps 5
    python benchmarks/train_step.py --preset nemotron-1b --dtype bfloat16 --seq 2048 --batch 4 --no-torch \
        --variants fused,cudnn                                                                  # GPU (MFU)

Each variant runs in its own subprocess (XLA flags are read once, at backend start). Torch runs HF
`NemotronForCausalLM` on the same config and weights (eager and sdpa attention) when torch + transformers are
installed. Printed: tokens/s, compile time, ours/torch-eager ratio, and the share of the machine's measured fp32
matmul GFLOP/s that each step reaches (model FLOPs from train/flops.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Optional

# name -> (extra XLA flags, ModelConfig overrides) for a variant of our step (BENCHMARKS.md: what each gave).
VARIANTS = {
    "default": ("", {}),
    "onednn": ("--xla_cpu_use_onednn=true", {}),
    "xnnpack": ("--xla_cpu_use_xnnpack=true", {}),
    "fast_math": ("--xla_cpu_enable_fast_math=true", {}),
    "vec512": ("--xla_cpu_prefer_vector_width=512", {}),
    "unrolled": ("", {"scan_layers": False}),  # no per-layer dynamic-slice of stacked weights and grads
    "bf16": ("", {"dtype": "bfloat16"}),  # fp32 masters, bf16 matmuls (this CPU has AVX512-BF16)
    "unrolled_bf16": ("", {"scan_layers": False, "dtype": "bfloat16"}),
    "unrolled_bf16_fast": ("--xla_cpu_enable_fast_math=true", {"scan_layers": False, "dtype": "bfloat16"}),
    "unrolled_bf16_thunkless": ("--xla_cpu_use_thunk_runtime=false", {"scan_layers": False, "dtype": "bfloat16"}),
    # attention cores (GPU): our einsum reference, jax.nn.dot_product_attention (XLA), and its cuDNN flash kernel
    "xla_attn": ("", {"attention_impl": "xla"}),
    "fused": ("", {"attention_impl": "fused"}),
    "cudnn": ("", {"attention_impl": "cudnn"}),
}


def _time(fn, n: int) -> float:
    """Median seconds of n calls (fn blocks until its result is ready)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def jax_worker(args: argparse.Namespace) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from nemotron_jax import config as C
    from nemotron_jax.losses.common import masked_nll
    from nemotron_jax.model import forward, init_params
    from nemotron_jax.train.optim import make_optimizer
    from nemotron_jax.train.state import TrainState
    from nemotron_jax.train.step import make_train_step

    overrides = {"dtype": args.dtype, **({"remat": args.remat} if args.remat else {}),
                 **json.loads(os.environ.get("BENCH_MODEL_OVERRIDES", "{}"))}
    cfg = C.model_preset(args.preset, max_seq_len=max(args.seq, 512), **overrides)
    params = init_params(cfg, jax.random.key(0))
    rng = np.random.default_rng(0)
    toks = jnp.asarray(rng.integers(0, cfg.vocab_size, (args.batch, args.seq + 1)), jnp.int32)
    batch = {"inputs": toks[None, :, :-1], "targets": toks[None, :, 1:],
             "loss_mask": jnp.ones((1, args.batch, args.seq), jnp.float32)}

    def loss_fn(p, b):
        s, n = masked_nll(forward(p, b["inputs"], cfg), b["targets"], b["loss_mask"])
        return s, {"count": n}

    opt = make_optimizer(C.OptimConfig(lr=1e-4, warmup_steps=1), 1e-4)
    state = TrainState.create(params, opt) if hasattr(TrainState, "create") else None
    if state is None:
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt.init(params),
                           nonfinite_in_a_row=jnp.zeros((), jnp.int32), nonfinite_total=jnp.zeros((), jnp.int32))
    step = jax.jit(make_train_step(loss_fn, opt), donate_argnums=0)
    fwd = jax.jit(lambda p, t: forward(p, t, cfg))

    t0 = time.perf_counter()
    fwd_c = fwd.lower(params, batch["inputs"][0]).compile()
    fwd_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    step_c = step.lower(state, batch).compile()
    step_compile = time.perf_counter() - t0

    fwd_c(params, batch["inputs"][0]).block_until_ready()
    fwd_s = _time(lambda: fwd_c(params, batch["inputs"][0]).block_until_ready(), args.steps)
    holder = {"state": state}

    def one_step():
        holder["state"], m = step_c(holder["state"], batch)
        jax.block_until_ready(m["loss"])

    one_step()
    step_s = _time(one_step, args.steps)
    tokens = args.batch * args.seq
    return {"fwd_tok_s": tokens / fwd_s, "step_tok_s": tokens / step_s, "fwd_compile_s": fwd_compile,
            "step_compile_s": step_compile, "device": str(jax.devices()[0].device_kind)}


def torch_worker(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    import transformers

    import jax

    from nemotron_jax import config as C
    from nemotron_jax.checkpoint.hf import config_to_hf, params_to_hf
    from nemotron_jax.model import init_params

    cfg = C.model_preset(args.preset, max_seq_len=max(args.seq, 512))
    hf_cfg = transformers.NemotronConfig(**{k: v for k, v in config_to_hf(cfg).items()
                                            if k not in ("architectures", "model_type", "torch_dtype", "dtype")})
    sd = {k: torch.from_numpy(v) for k, v in params_to_hf(init_params(cfg, jax.random.key(0)), cfg).items()}
    rng = np.random.default_rng(0)
    toks = torch.as_tensor(rng.integers(0, cfg.vocab_size, (args.batch, args.seq + 1)), dtype=torch.long)
    inputs, targets = toks[:, :-1], toks[:, 1:]
    out = {"torch_threads": torch.get_num_threads()}
    for impl in ("eager", "sdpa"):
        model = transformers.NemotronForCausalLM._from_config(hf_cfg, attn_implementation=impl,
                                                              torch_dtype=torch.float32)
        model.load_state_dict(sd, strict=False)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-5, weight_decay=0.1)

        def fwd():
            with torch.no_grad():
                model(inputs).logits

        def step():
            logits = model(inputs).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        fwd()
        step()
        tokens = args.batch * args.seq
        out[f"{impl}_fwd_tok_s"] = tokens / _time(fwd, args.steps)
        out[f"{impl}_step_tok_s"] = tokens / _time(step, args.steps)
    return out


def matmul_worker(args: argparse.Namespace) -> dict:
    """Matmul GFLOP/s of this machine through XLA and (if installed) torch: the ceiling we compare with. On a CPU
    fp32 at 2048; on a GPU the run's dtype at 8192 (bf16 there is what the tensor cores are rated for)."""
    import jax
    import jax.numpy as jnp

    gpu = jax.default_backend() == "gpu"
    n, dtype = (8192, jnp.dtype(args.dtype)) if gpu else (2048, jnp.dtype("float32"))
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    mm = jax.jit(lambda x: x @ x)
    mm(a).block_until_ready()
    out = {"xla_matmul_gflops": 2 * n**3 / _time(lambda: mm(a).block_until_ready(), 10) / 1e9}
    try:
        import torch

        dev = "cuda" if gpu and torch.cuda.is_available() else "cpu"
        t = torch.randn(n, n, device=dev, dtype=getattr(torch, dtype.name))

        def tmm():
            t @ t
            if dev == "cuda":
                torch.cuda.synchronize()

        tmm()
        out["torch_matmul_gflops"] = 2 * n**3 / _time(tmm, 10) / 1e9
    except (ImportError, RuntimeError):
        pass
    return out


def _run_worker(kind: str, args: argparse.Namespace, xla_flags: str = "", overrides: Optional[dict] = None) -> dict:
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + xla_flags).strip(),
               BENCH_MODEL_OVERRIDES=json.dumps(overrides or {}))
    cmd = [sys.executable, __file__, "--worker", kind] + [a for a in sys.argv[1:] if a != "--worker"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [x for x in proc.stderr.strip().splitlines() if x.strip() and not x.startswith(("---", "For simp"))]
        tail = " | ".join(lines[-3:])  # the last lines name the cause (OOM, cuDNN)
        return {"error": tail or f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="bench-cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--remat", default="")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--variants", default="default,onednn,xnnpack,fast_math,vec512")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--worker", default="")
    args = p.parse_args()
    if args.worker:
        print(json.dumps({"jax": jax_worker, "torch": torch_worker, "matmul": matmul_worker}[args.worker](args)))
        return

    from nemotron_jax import config as C
    from nemotron_jax.train.flops import H100_BF16_PEAK, flops_per_token

    cfg = C.model_preset(args.preset, max_seq_len=max(args.seq, 512))
    step_flops_per_tok = flops_per_token(cfg, args.seq)
    peak = _run_worker("matmul", args)
    machine_gflops = max(v for k, v in peak.items() if k.endswith("gflops"))
    print(f"# {args.preset} seq {args.seq} batch {args.batch} {args.dtype}; matmul ceiling "
          f"{machine_gflops:.0f} GFLOP/s ({', '.join(f'{k} {v:.0f}' for k, v in peak.items())})")
    torch_res = {} if args.no_torch else _run_worker("torch", args)
    rows = []
    for name in args.variants.split(","):
        res = _run_worker("jax", args, *VARIANTS[name])
        rows.append((f"jax[{name}]", res))
    base = torch_res.get("eager_step_tok_s")
    print(f"{'impl':<18}{'fwd tok/s':>12}{'step tok/s':>12}{'vs torch eager':>16}{'% matmul peak':>15}"
          f"{'compile s':>11}{'MFU (989 TF)':>14}")
    for name, r in rows:
        if "error" in r:
            print(f"{name:<18} failed: {r['error']}")
            continue
        ratio = f"{r['step_tok_s'] / base:.2f}x" if base else "-"
        pct = 100 * r["step_tok_s"] * step_flops_per_tok / (machine_gflops * 1e9)
        # MFU against the rated dense bf16 peak of an H100/H200 (the paper's denominator): GPU runs only
        rated = (f"{100 * r['step_tok_s'] * step_flops_per_tok / H100_BF16_PEAK:>13.1f}%"
                 if "H100" in r["device"] or "H200" in r["device"] else f"{'-':>14}")
        print(f"{name:<18}{r['fwd_tok_s']:>12.0f}{r['step_tok_s']:>12.0f}{ratio:>16}{pct:>14.1f}%"
              f"{r['step_compile_s']:>11.1f}{rated}  {r['device']}")
    if "error" in torch_res:
        print(f"torch failed: {torch_res['error']}")
    for impl in ("eager", "sdpa"):
        if f"{impl}_step_tok_s" in torch_res:
            s = torch_res[f"{impl}_step_tok_s"]
            pct = 100 * s * step_flops_per_tok / (machine_gflops * 1e9)
            print(f"{'torch[' + impl + ']':<18}{torch_res[impl + '_fwd_tok_s']:>12.0f}{s:>12.0f}"
                  f"{s / base:>15.2f}x{pct:>14.1f}%{'-':>11}")


if __name__ == "__main__":
    main()
