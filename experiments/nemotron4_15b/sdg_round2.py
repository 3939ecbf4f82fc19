"""SDG round 2, weak-to-strong (SPEC §4): the aligned model of round 1 (Interm-1-Instruct) is now the generator and
one of the answering policies; its data aligns the next, stronger base checkpoint. Same pipeline, new seed.

    GENERATOR_URL=<interm-1-instruct server> POLICY_URLS=... REWARD_URL=... \
    nemotron-jax sdg experiments/nemotron4_15b/sdg_round2.py --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
"""

from nemotron_jax.sdg.configs.nemotron4_340b import CONFIG as PIPELINE

CONFIG = {**PIPELINE, "name": "nemotron4_15b_sdg_round2", "out_dir": "runs/nemotron4_15b/sdg_round2", "seed": 2}
