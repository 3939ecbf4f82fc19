#!/usr/bin/env python
"""Build a tiny random HF ``NemotronForCausalLM`` and save it as a parity fixture.

Writes, under ``--out`` (default ``tests/fixtures/hf_tiny``):

* ``config.json`` + ``model.safetensors`` -- via ``save_pretrained(safe_serialization=True)``
* ``reference.npz`` -- ``tokens`` (int32, [2, 16]) and ``logits`` (float32, [2, 16, 256]),
  computed in fp32 with eager attention and default positions (0..15).

Needs torch + transformers (``pip install -e .[hf]``); the tests only read the outputs.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

VOCAB = 256
BATCH, SEQ = 2, 16
HEAD_DIM = 24
PARTIAL_ROTARY_FACTOR = 0.5


def build_config():
    from transformers import NemotronConfig

    rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": PARTIAL_ROTARY_FACTOR}
    common = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=HEAD_DIM,  # deliberately != hidden_size / num_attention_heads (16)
        intermediate_size=96,
        norm_eps=1e-5,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        hidden_act="relu2",
        bos_token_id=2,
        eos_token_id=3,
    )
    try:  # transformers >= 5: rope settings live in ``rope_parameters``
        cfg = NemotronConfig(rope_parameters=rope, dtype="float32", **common)
    except TypeError:  # older transformers: top-level rope_theta / partial_rotary_factor
        cfg = NemotronConfig(
            rope_theta=10000.0, partial_rotary_factor=PARTIAL_ROTARY_FACTOR, torch_dtype="float32", **common
        )
    return cfg


@torch.no_grad()
def reinit_(model, gen: torch.Generator) -> None:
    """Overwrite every parameter with non-trivial random values."""
    for name, p in model.named_parameters():
        is_norm = "layernorm" in name or name.startswith("model.norm.")
        std = 0.3 if is_norm else 0.1  # LayerNorm1P: scale = weight + 1, so non-zero weight/bias matter
        p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * std)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/hf_tiny")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import transformers
    from transformers import NemotronForCausalLM

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    cfg = build_config()
    model = NemotronForCausalLM(cfg).to(torch.float32)
    model.config._attn_implementation = "eager"
    model.eval()

    inv_freq = model.model.rotary_emb.inv_freq
    expected = int(HEAD_DIM * PARTIAL_ROTARY_FACTOR) // 2
    assert inv_freq.numel() == expected, (inv_freq.numel(), expected)

    reinit_(model, gen)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen, dtype=torch.long)

    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)

    # Reload from disk (fp32, eager) so the reference reflects exactly what was saved.
    ref = NemotronForCausalLM.from_pretrained(args.out, dtype=torch.float32, attn_implementation="eager")
    ref.eval()
    assert ref.model.rotary_emb.inv_freq.numel() == expected
    with torch.no_grad():
        logits = ref(input_ids=tokens).logits.float().numpy()
        logits0 = model(input_ids=tokens).logits.float().numpy()
    np.testing.assert_allclose(logits, logits0, rtol=0, atol=0)
    assert logits.shape == (BATCH, SEQ, VOCAB)

    np.savez(
        os.path.join(args.out, "reference.npz"),
        tokens=tokens.numpy().astype(np.int32),
        logits=logits.astype(np.float32),
    )

    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    total = 0
    for fn in sorted(os.listdir(args.out)):
        size = os.path.getsize(os.path.join(args.out, fn))
        total += size
        print(f"  {os.path.join(args.out, fn)}  {size} bytes")
    print(f"  total {total} bytes")


if __name__ == "__main__":
    main()
