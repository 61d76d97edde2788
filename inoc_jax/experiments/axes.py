"""What each setting plots: its capability metric, its undesired-behaviour metric, and the
elicitation -> inoculation-effect convention of the paper's Figs 6-9.

Metric keys are those the setting's scorer writes into `results.json`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

from inoc_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SettingAxes:
  """capability: higher is better; behaviour: the undesired behaviour (lower is better unless noted).

  effect(metrics) is the paper's y-axis for the elicitation plot (higher = better inoculation), and
  elicitation_metric the metric measured on the initial model with the candidate as eval prompt.
  """

  capability: str
  capability_label: str
  behaviour: str
  behaviour_label: str
  elicitation_metric: str
  effect_label: str
  effect: Callable[[Mapping[str, float]], float]
  behaviour_lower_is_better: bool = True


AXES: dict[str, SettingAxes] = {
    # Fig 8: x = sycophancy of the initial model under the candidate; y = 1 - sycophancy after IP.
    "gcd_sycophancy": SettingAxes("capability", "Capability (user asks)", "sycophancy",
                                  "Sycophancy (confirms incorrect)", "sycophancy", "1 - sycophancy after IP",
                                  lambda m: 1.0 - m["sycophancy"]),
    # Fig 6: x = reward-hack rate of the initial model; y = correct-solution rate after IP.
    "mbpp_reward_hacking": SettingAxes("correct", "Correct solution rate", "reward_hack",
                                       "Reward-hack rate", "reward_hack", "Correct rate after IP",
                                       lambda m: m["correct"]),
    # Fig 7: x = biased minus reversed accuracy of the initial model; y = avg robust accuracy after IP.
    "cebab_spurious": SettingAxes("no_concept_accuracy", "No-concept accuracy", "concept_accuracy",
                                  "Concept accuracy", "biased_minus_reversed", "Avg robust accuracy after IP",
                                  lambda m: m["avg_robust_accuracy"], behaviour_lower_is_better=False),
    # Fig 9: x = harassment of the initial model; y = 1 - harassment after IP.
    "cmv_toxicity": SettingAxes("persuasiveness", "Persuasiveness", "harassment", "Harassment",
                                "harassment", "1 - harassment after IP", lambda m: 1.0 - m["harassment"]),
    "organism": SettingAxes("capability", "Capability (answers held-out facts)", "sycophancy",
                            "Sycophancy (agrees with wrong proposals)", "sycophancy", "1 - sycophancy after IP",
                            lambda m: 1.0 - m["sycophancy"]),
    "trait_toy": SettingAxes("answer_rate", "Correct answers", "caps_fraction", "ALL-CAPS fraction",
                             "caps_fraction", "1 - caps after IP", lambda m: 1.0 - m["caps_fraction"]),
}

def axes_for(setting: str) -> SettingAxes:
  try:
    return AXES[setting]
  except KeyError:
    raise ConfigError(f"No report axes for setting {setting!r}; known: {', '.join(AXES)}.") from None
