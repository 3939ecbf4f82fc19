"""The README's main job: the whole Nemotron-4 recipe, weak-to-strong, at toy scale on a CPU (~15 min on 2 cores).

    python experiments/toy/weak_to_strong.py [--quick]        # same as: nemotron-jax demo [--quick]

Differs from the defaults only where written below; see nemotron_jax/recipe/weak_to_strong.py for every stage.
"""

import sys

from nemotron_jax.recipe.weak_to_strong import RecipeConfig, quick, run_recipe

CONFIG = RecipeConfig(name="weak_to_strong")

if __name__ == "__main__":
    run_recipe(quick(CONFIG) if "--quick" in sys.argv[1:] else CONFIG)
