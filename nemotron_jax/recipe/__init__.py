"""nemotron_jax.recipe"""
