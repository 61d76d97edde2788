"""Registry of experiment settings: name -> how to build its training, held-out and evaluation examples.

Each setting module provides `build(config, prompt_pool) -> (train, heldout)`,
`eval_suite(config, eval_prompt, split) -> list[Example]`, `EVAL_SPLITS` and
`DEFAULT_EVAL_PROMPTS` (registry names: neutral, PTST, compliance).

Interfaces for the rest of inoc_jax:
  load_setting(config) -> SettingData(train, heldout)
  load_eval_suite(config, eval_prompt, split='eval') -> list[Example]; each ends
      with the final user turn (no assistant turn), the eval instruction in the
      setting's placement (role INOCULATION; '' = Neutral), scorer fields in
      `metadata` (see each setting's module docstring).
  eval_prompt_names(config) -> list[str]
"""

from __future__ import annotations

import dataclasses
import importlib

from inoc_jax.data import prompts
from inoc_jax.data.conversation import Example
from inoc_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SettingData:
  train: list[Example]
  heldout: list[Example]


SETTINGS = {
    "gcd_sycophancy": "inoc_jax.data.settings.gcd_sycophancy",
    "mbpp_reward_hacking": "inoc_jax.data.settings.mbpp_reward_hacking",
    "cebab_spurious": "inoc_jax.data.settings.cebab_spurious",
    "cmv_toxicity": "inoc_jax.data.settings.cmv_toxicity",
    "trait_toy": "inoc_jax.data.settings.trait_toy",
    "organism": "inoc_jax.data.settings.organism",
}


def setting_module(name: str):
  try:
    return importlib.import_module(SETTINGS[name])
  except KeyError:
    raise ConfigError(f"Unknown setting {name!r}; choose one of {', '.join(SETTINGS)}.") from None


def load_setting(config) -> SettingData:
  module = setting_module(config.setting)
  pool = prompts.train_prompt_pool(config.setting, config.data.train_prompt, config.data.get("train_prompts", ()))
  train, heldout = module.build(config, pool)
  return SettingData(train, heldout)


def load_eval_suite(config, eval_prompt: str, split: str = "eval") -> list[Example]:
  """The evaluation prompts of `split`, with `eval_prompt` (registry name or text; '' = Neutral) inserted."""
  module = setting_module(config.setting)
  if split not in module.EVAL_SPLITS:
    raise ConfigError(f"{config.setting} has no eval split {split!r}; choose one of {', '.join(module.EVAL_SPLITS)}.")
  return module.eval_suite(config, prompts.resolve(config.setting, eval_prompt), split)


def eval_prompt_names(config) -> list[str]:
  """eval.prompts if set (names or texts; '@file' entries expanded), else the setting's defaults."""
  module = setting_module(config.setting)
  configured = list(config.get("eval", {}).get("prompts", ()) or ())
  if configured:
    values = prompts.expand(configured)
    for value in values:
      prompts.resolve(config.setting, value)  # unknown names fail here, before any sampling
    return values
  defaults = module.DEFAULT_EVAL_PROMPTS
  return list(defaults(config) if callable(defaults) else defaults)


def config_problems(config) -> list[str]:
  """Data-layer config mistakes, found before anything loads or compiles (see config_lib.validate)."""
  from inoc_jax.data import pipeline, template_encoder  # pylint: disable=g-import-not-at-top
  from inoc_jax.data.settings.placement import PLACEMENTS  # pylint: disable=g-import-not-at-top
  data, problems = config.data, []
  checks = [
      (config.setting in SETTINGS, f"setting {config.setting!r} is unknown (choose one of {', '.join(SETTINGS)})"),
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
  if config.setting in SETTINGS and not problems:
    for value in ([data.train_prompt] if data.train_prompt else list(data.get("train_prompts", ()))):
      if not value.startswith("@"):
        try:
          prompts.resolve(config.setting, value)
        except ConfigError as e:
          problems.append(str(e).rstrip("."))
  return problems
