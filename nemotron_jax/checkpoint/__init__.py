"""nemotron_jax.checkpoint"""
