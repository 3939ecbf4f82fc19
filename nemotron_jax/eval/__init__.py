"""nemotron_jax.eval"""
