"""Model-FLOPs accounting (SPEC §2): what MFU means in this project.

Per token, forward, counting a multiply-add as 2 FLOPs:
    per layer:  QKV 2·D·(N + 2K)·H  +  attention out 2·N·H·D  +  MLP (up, down) 2·2·D·F
                +  attention scores and weighted values 4·T·N·H   (causal masking NOT halved)
    output:     2·D·V
Training = 3 × forward (backward is twice the forward); rematerialisation is NOT counted (model FLOPs, not
hardware FLOPs). With these rules the paper's three batch-ramp rows (42.4 / 42.3 / 41.0% MFU) come out within 0.2.
"""

from __future__ import annotations

from nemotron_jax.config import ModelConfig

H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of one H100 SXM (the paper's MFU denominator)
H200_BF16_PEAK = 989e12  # same tensor cores as H100; only memory differs


def forward_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward matmul FLOPs for one token of a `seq_len`-long sequence."""
    d, n, k, h, f = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.ffn_dim
    projections = 2 * d * (n + 2 * k) * h + 2 * n * h * d
    mlp = 2 * 2 * d * f
    attention = 4 * seq_len * n * h
    return float(cfg.num_layers * (projections + mlp + attention) + 2 * d * cfg.vocab_size)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token: 3 × the forward (no recompute counted)."""
    return 3.0 * forward_flops_per_token(cfg, seq_len)


def mfu(cfg: ModelConfig, *, seq_len: int, global_batch: int, step_time_s: float, num_devices: int,
        peak_flops: float = H100_BF16_PEAK) -> float:
    """Model FLOPs utilisation in [0, 1]: achieved training FLOP/s over the devices' peak."""
    if step_time_s <= 0 or num_devices <= 0 or peak_flops <= 0:
        raise ValueError(f"mfu needs positive step_time_s, num_devices and peak_flops; got {step_time_s}, "
                         f"{num_devices}, {peak_flops}")
    achieved = flops_per_token(cfg, seq_len) * seq_len * global_batch / step_time_s
    return achieved / (num_devices * peak_flops)
