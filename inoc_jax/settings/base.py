"""What a setting is: one object that answers everything the trainer, evaluator, sweep, elicit and report ask.

A setting module (inoc_jax/settings/<name>.py, or any importable module of your
own) defines `SETTING = Setting(...)`. Nothing else in the package is keyed by a
setting's name: the data builder, the prompt table, the scorer, the paper's
decoding, which metric is the capability and which the undesired behaviour, the
report axes, the sweep's skyline arm and what scoring needs all live here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence, Union

from inoc_jax.data.conversation import Example
from inoc_jax.data.prompts import PromptTable

# (config, train prompt pool) -> (train examples, held-out examples); see inoc_jax/data/settings/*.py
BuildFn = Callable[[Any, list], "tuple[list[Example], list[Example]]"]
# (config, eval instruction text ('' = Neutral), split) -> examples ending with the final user turn
EvalSuiteFn = Callable[[Any, str, str], "list[Example]"]
# (examples, responses per example, ScoringContext) -> ScoreReport
ScorerFn = Callable[..., Any]
PromptNames = Union[Sequence[str], Callable[[Any], Sequence[str]]]


@dataclasses.dataclass(frozen=True)
class Decoding:
  """The paper's decoding for a setting (eval.* fields at -1 / 0 fall back to these)."""

  temperature: float
  top_p: float = 1.0
  top_k: int = 0
  max_new_tokens: int = 256
  num_samples: int = 1


@dataclasses.dataclass(frozen=True)
class Metrics:
  """Which of the scorer's metrics mean what.

  capability: the skill training should teach (higher is better).
  behaviour: the undesired behaviour (lower is better unless behaviour_lower_is_better=False).
  headline: printed first after an evaluation; compared: the initial-vs-final table's columns.
  effect / effect_direction: the metric (in words) an inoculation effect moves, and which way
    ('lower' or 'higher') relative to the Neutral arm, for the sentence under that table.
  """

  capability: str
  capability_label: str
  behaviour: str
  behaviour_label: str
  headline: tuple[str, ...]
  compared: tuple[str, ...]
  effect: str
  effect_direction: str = "lower"
  behaviour_lower_is_better: bool = True


@dataclasses.dataclass(frozen=True)
class Elicitation:
  """The paper's elicitation plot (Figs 6-9): x = `metric` of the initial model with the candidate as eval
  prompt, y = `effect(metrics after IP)` (higher = better inoculation), labelled `effect_label`.

  splits: the eval splits a candidate is scored on (() = config.eval.split); combine(by_split) turns
  {split: metrics} into (score, flat metrics) when the score needs more than one split (CEBaB).
  """

  metric: str
  effect_label: str
  effect: Callable[[Mapping[str, float]], float]
  splits: tuple[str, ...] = ()
  combine: Callable[[Mapping[str, Mapping[str, Any]]], "tuple[float | None, dict]"] | None = None


@dataclasses.dataclass(frozen=True)
class Setting:
  """One experiment setting. Fields are documented where they are declared; see settings/gcd_sycophancy.py."""

  name: str
  summary: str                     # one line for listings
  build: BuildFn
  eval_suite: EvalSuiteFn
  eval_splits: tuple[str, ...]
  prompts: PromptTable
  default_eval_prompts: PromptNames  # names in `prompts` (or a function of the config returning them)
  scorer: ScorerFn
  decoding: Decoding
  metrics: Metrics
  elicitation: Elicitation | None = None  # None: the behaviour metric (see __post_init__)
  config_key: str = ""             # its options live in config.data.<config_key> ...
  data_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # ... with these defaults
  skyline: str = ""                # the clean-data arm, 'Label: field=value; ...' ('' = none)
  arm_variant: Callable[[Any], str] = lambda config: ""  # default arms use prompts of this variant only
  needs_sandbox: bool = False      # the scorer runs model code (ScoringContext.sandbox)
  needs_judges: bool = False       # the scorer calls judges (ScoringContext.*_judge)
  config_check: Callable[[Any], list] = lambda config: []  # the setting's own config problems, as phrases

  def __post_init__(self):
    if self.elicitation is None:  # default: the behaviour itself, the effect its improvement after IP
      m = self.metrics
      if m.behaviour_lower_is_better:
        default = Elicitation(m.behaviour, f"1 - {m.behaviour} after IP", lambda r: 1.0 - r[m.behaviour])
      else:
        default = Elicitation(m.behaviour, f"{m.behaviour} after IP", lambda r: r[m.behaviour])
      object.__setattr__(self, "elicitation", default)

  def eval_prompt_names(self, config) -> list[str]:
    names = self.default_eval_prompts
    return list(names(config) if callable(names) else names)

  def default_arms(self, config, kinds: Sequence[str]) -> list[str]:
    """'Label: overrides' for Neutral, every registered prompt of `kinds` (of this config's variant), the skyline."""
    variant = self.arm_variant(config)
    arms = ["Neutral: data.train_prompt="]
    arms += [f"{p.label}: data.train_prompt={p.name}" for p in self.prompts.entries
             if p.kind in kinds and p.variant == variant]
    if self.skyline:
      arms.append(f"{self.skyline}; data.train_prompt=")
    return arms
