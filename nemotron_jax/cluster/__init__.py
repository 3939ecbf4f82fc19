"""Multi-host launch: SLURM environment -> jax.distributed, pre-flight checks, and a CPU dry run of a launch."""
