"""nemotron_jax.train: the train step, the loop (`run(experiment)`), schedules, batch ramp, metrics."""


def __getattr__(name: str):
    if name == "run":  # lazy, so `import nemotron_jax.train.flops` stays light
        from nemotron_jax.train.loop import run

        return run
    raise AttributeError(f"module 'nemotron_jax.train' has no attribute {name!r}")
