"""nemotron_jax.sdg"""
