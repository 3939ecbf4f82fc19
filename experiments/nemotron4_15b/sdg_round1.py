"""SDG round 1 (SPEC §4): a permissive instruct model (Mixtral-8x7B-Instruct in the paper) writes the prompts,
several intermediate models answer, verifiers / ground truth judge where they can and the reward model elsewhere,
best-vs-worst pairs keep their rewards for RPO. The pipeline itself: nemotron_jax/sdg/configs/nemotron4_340b.py.

    GENERATOR_URL=... POLICY_URLS=... REWARD_URL=... \
    nemotron-jax sdg experiments/nemotron4_15b/sdg_round1.py --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
"""

from nemotron_jax.sdg.configs.nemotron4_340b import CONFIG as PIPELINE

CONFIG = {**PIPELINE, "name": "nemotron4_15b_sdg_round1", "out_dir": "runs/nemotron4_15b/sdg_round1", "seed": 1}
