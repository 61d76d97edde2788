"""Registry of experiment settings: name -> how to build its examples."""

from __future__ import annotations

import dataclasses

from inoc_jax.data.conversation import Example
from inoc_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SettingData:
  train: list[Example]
  heldout: list[Example]


def _gcd_sycophancy(config) -> SettingData:
  from inoc_jax.data.settings import gcd_sycophancy  # pylint: disable=g-import-not-at-top
  train, heldout = gcd_sycophancy.build_examples(config.data.num_train_examples, config.data.num_heldout_examples,
                                                 config.seed, instruction=config.data.train_prompt)
  return SettingData(train, heldout)


SETTINGS = {
    "gcd_sycophancy": _gcd_sycophancy,
}


def load_setting(config) -> SettingData:
  try:
    builder = SETTINGS[config.setting]
  except KeyError:
    raise ConfigError(f"Unknown setting {config.setting!r}; choose one of {', '.join(SETTINGS)}.") from None
  return builder(config)
