"""The Nemotron-4 model as pure functions over a parameter pytree."""

from nemotron_jax.model.transformer import (Block, Transformer, block_fn, default_positions, forward,
                                            forward_cached, forward_hidden, fuse_qkv, init_cache, init_params,
                                            layer_params, logical_axes, param_counts, param_shapes,
                                            unstack_layers)

__all__ = ["Block", "Transformer", "block_fn", "default_positions", "forward", "forward_cached", "forward_hidden",
           "fuse_qkv", "init_cache", "init_params", "layer_params", "logical_axes", "param_counts", "param_shapes",
           "unstack_layers"]
