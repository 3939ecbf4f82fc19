"""nemotron_jax.inference"""
