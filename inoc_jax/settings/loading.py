"""A config -> its setting's examples: training and held-out sets, eval suites, eval prompt names.

  load_setting(config) -> SettingData(train, heldout)
  load_eval_suite(config, eval_prompt, split='eval') -> list[Example]; each ends
      with the final user turn (no assistant turn), the eval instruction in the
      setting's placement (role INOCULATION; '' = Neutral), scorer fields in
      `metadata` (see each setting's data module docstring).
  eval_prompt_names(config) -> list[str]
  config_problems(config) -> the data-layer mistakes, as phrases for config_lib.validate
"""

from __future__ import annotations

import dataclasses

from inoc_jax import settings
from inoc_jax.data import prompts
from inoc_jax.data.conversation import Example
from inoc_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SettingData:
  train: list[Example]
  heldout: list[Example]


def train_prompt_pool(config) -> list[str]:
  """The texts one of which goes into each training example ([''] = Neutral)."""
  table = settings.get(config.setting).prompts
  return table.train_pool(config.data.train_prompt, tuple(config.data.get("train_prompts", ())))


def load_setting(config) -> SettingData:
  train, heldout = settings.get(config.setting).build(config, train_prompt_pool(config))
  return SettingData(train, heldout)


def load_eval_suite(config, eval_prompt: str, split: str = "eval") -> list[Example]:
  """The evaluation prompts of `split`, with `eval_prompt` (registry name or text; '' = Neutral) inserted."""
  setting = settings.get(config.setting)
  if split not in setting.eval_splits:
    raise ConfigError(f"{config.setting} has no eval split {split!r}; choose one of {', '.join(setting.eval_splits)}.")
  return setting.eval_suite(config, setting.prompts.resolve(eval_prompt), split)


def eval_prompt_names(config) -> list[str]:
  """eval.prompts if set (names or texts; '@file' entries expanded), else the setting's defaults."""
  setting = settings.get(config.setting)
  configured = list(config.get("eval", {}).get("prompts", ()) or ())
  if configured:
    values = prompts.expand(configured)
    for value in values:
      setting.prompts.resolve(value)  # unknown names fail here, before any sampling
    return values
  return setting.eval_prompt_names(config)


def config_problems(config) -> list[str]:
  """Data-layer config mistakes, found before anything loads or compiles (see config_lib.validate)."""
  from inoc_jax.data import pipeline, template_encoder  # pylint: disable=g-import-not-at-top
  from inoc_jax.data.settings.placement import PLACEMENTS  # pylint: disable=g-import-not-at-top
  data, problems = config.data, []
  try:
    setting = settings.get(config.setting)
  except ConfigError as e:
    setting = None
    problems.append(str(e).rstrip("."))
  checks = [
      (data.get("truncation", "drop") in pipeline.TRUNCATION_POLICIES,
       f"data.truncation must be one of {', '.join(pipeline.TRUNCATION_POLICIES)}"),
      (data.get("prompt_placement", "setting") in PLACEMENTS,
       f"data.prompt_placement must be one of {', '.join(PLACEMENTS)}"),
      (data.get("append_eos", "auto") in template_encoder.APPEND_EOS,
       f"data.append_eos must be one of {', '.join(template_encoder.APPEND_EOS)}"),
      (data.get("system_prompt_fallback", "error") in template_encoder.SYSTEM_FALLBACKS,
       f"data.system_prompt_fallback must be one of {', '.join(template_encoder.SYSTEM_FALLBACKS)}"),
      (data.num_heldout_examples >= 0, "data.num_heldout_examples must be >= 0"),
      (not (data.train_prompt and data.get("train_prompts", ())), "set data.train_prompt or data.train_prompts, "
                                                                    "not both"),
  ]
  problems.extend(message for ok, message in checks if not ok)
  if setting is not None and setting.config_key and setting.config_key not in data:
    problems.append(f"data.{setting.config_key} (the {config.setting} options) is missing; start the config from "
                    f"config_defaults.base_config({config.setting!r})")
  if setting is not None and not problems:
    problems.extend(setting.config_check(config))
    for value in ([data.train_prompt] if data.train_prompt else list(data.get("train_prompts", ()))):
      if not value.startswith("@"):
        try:
          setting.prompts.resolve(value)
        except ConfigError as e:
          problems.append(str(e).rstrip("."))
  return problems
