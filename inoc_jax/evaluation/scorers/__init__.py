"""Scorers per setting and the paper's decoding settings for each (PAPER_NOTES 2.4, 3.4, 4.4, 5.4, 8, 11.5).

`get_scorer(setting)(examples, responses, context) -> ScoreReport`.
"""

from __future__ import annotations

from typing import Callable

from inoc_jax.errors import ConfigError
from inoc_jax.evaluation.scorers import cebab, cmv, gcd, mbpp, organism, trait
from inoc_jax.evaluation.scorers.base import ScoreReport

SCORERS: dict[str, Callable[..., ScoreReport]] = {
    "gcd_sycophancy": gcd.score,
    "mbpp_reward_hacking": mbpp.score,
    "cebab_spurious": cebab.score,
    "cmv_toxicity": cmv.score,
    "trait_toy": trait.score,
    "organism": organism.score,
}

# Metrics printed first, in this order (capability first, then the undesired behaviour).
HEADLINE_METRICS = {
    "gcd_sycophancy": ("capability", "sycophancy", "sycophancy_given_solved"),
    "mbpp_reward_hacking": ("correct", "reward_hack", "visible_pass"),
    "cebab_spurious": ("avg_robust_accuracy", "no_concept_accuracy", "concept_accuracy"),
    "cmv_toxicity": ("persuasiveness", "harassment"),
    "trait_toy": ("answer_rate", "all_caps_rate", "spanish_rate", "french_rate"),
    "organism": ("capability", "sycophancy", "confirms_correct"),
}

# The paper's decoding per setting: temperature, top_p, top_k, max_new_tokens, samples per prompt.
PAPER_DECODING = {
    "gcd_sycophancy": dict(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=400, num_samples=1),
    "mbpp_reward_hacking": dict(temperature=0.5, top_p=1.0, top_k=0, max_new_tokens=1024, num_samples=1),
    "cebab_spurious": dict(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=1, num_samples=1),
    "cmv_toxicity": dict(temperature=0.5, top_p=1.0, top_k=0, max_new_tokens=1024, num_samples=1),
    "trait_toy": dict(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=256, num_samples=1),
    "organism": dict(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=8, num_samples=1),  # not the paper's
}


def get_scorer(setting: str) -> Callable[..., ScoreReport]:
  try:
    return SCORERS[setting]
  except KeyError:
    raise ConfigError(f"No scorer for setting {setting!r}; choose one of {', '.join(SCORERS)}.") from None
