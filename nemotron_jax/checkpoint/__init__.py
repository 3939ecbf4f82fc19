"""Checkpoints: orbax training state, parameter-only folders, HF/Megatron interop."""
