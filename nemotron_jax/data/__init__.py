"""nemotron_jax.data"""
