"""nemotron_jax.losses"""
