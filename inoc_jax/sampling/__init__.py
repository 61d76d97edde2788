"""KV-cache sampling: `Sampler`, `SamplingParams`, `Generation` (see sampler.py)."""

from inoc_jax.sampling.params import SamplingParams
from inoc_jax.sampling.sampler import Generation, Sampler

__all__ = ["Generation", "Sampler", "SamplingParams"]
