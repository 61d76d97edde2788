"""What a sweep's report plots: the setting's capability metric, its undesired-behaviour metric, and the
elicitation -> inoculation-effect convention of the paper's Figs 6-9, read from its Setting object.

Metric keys are those the setting's scorer writes into `results.json`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping



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


def axes_for(setting: str) -> SettingAxes:
  """The report axes of `setting`, from its Setting object (metrics and elicitation)."""
  from inoc_jax import settings  # pylint: disable=g-import-not-at-top
  found = settings.get(setting)
  m, e = found.metrics, found.elicitation
  return SettingAxes(m.capability, m.capability_label, m.behaviour, m.behaviour_label, e.metric, e.effect_label,
                     e.effect, m.behaviour_lower_is_better)
