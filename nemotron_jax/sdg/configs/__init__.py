"""Ready-made SDG pipeline configs: run one with `nemotron-jax sdg path/to/config.py`."""
