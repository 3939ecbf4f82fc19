"""nemotron_jax.train"""
