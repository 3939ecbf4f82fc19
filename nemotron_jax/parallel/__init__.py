"""Parallelism: one logical->mesh table, the mesh, the interleaved pipeline, sharded training and the planner.

    axes.py      logical axis names, RULES (the only place mesh axes are named), spec helpers
    mesh.py      ParallelConfig -> Mesh / AbstractMesh, `validate` (fix-it errors before compiling)
    pipeline.py  interleaved circular pipeline over the `pipeline` axis (`pipelined_layers`, `bubble_fraction`)
    training.py  `build_sharded_training`, `make_forward`, `make_forward_hidden`, state/param specs
    plan.py      `plan(...)` and `nemotron-jax plan`: per-device bytes, bubble, FLOPs, MFU, fits-or-not

Nothing is imported here: model code imports `parallel.axes`, and training.py imports the model.
"""
