from setuptools import find_packages, setup

setup(
    name="nemotron_jax",
    version="0.1.0",
    description="The Nemotron-4 340B recipe in JAX: model, 3D-parallel pretraining, reward model, SFT, DPO, RPO, "
                "synthetic data generation and the weak-to-strong loop, runnable at toy scale on a CPU.",
    packages=find_packages(include=["nemotron_jax", "nemotron_jax.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "chex>=0.1.90",
        "grain>=0.2.10",
        "sentencepiece>=0.2.0",
        "numpy>=1.26",
        "jaxtyping>=0.2.36",
        "safetensors>=0.4",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "tensorboardX>=2.6",
        "pyarrow>=15",
        "langdetect>=1.0.9",  # IFEval's language:response_language verifier (sdg/instructions.py)
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "openai>=1.40", "httpx>=0.27"],
        "hf": ["torch==2.13.0", "transformers>=4.45"],
    },
    entry_points={"console_scripts": ["nemotron-jax=nemotron_jax.cli:main"]},
)
