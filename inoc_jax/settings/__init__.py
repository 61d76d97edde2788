"""The experiment settings: one `Setting` object per module, one registry.

    setting = settings.get(config.setting)   # 'gcd_sycophancy', ... or 'my_package.my_setting'
    setting.build(config, pool); setting.scorer(examples, responses, context); setting.metrics.capability

Built-in settings are the modules of this package named in BUILT_IN. A
researcher's own setting is any importable module that defines
`SETTING = Setting(...)`: set `config.setting` to its dotted module path (see
the README's "Bring your own experiment" and settings/conversations.py).
The functions that turn a config into examples are in settings/loading.py.
"""

from __future__ import annotations

import functools
import importlib

from inoc_jax.errors import ConfigError
from inoc_jax.settings.base import Decoding, Elicitation, Metrics, Setting

BUILT_IN = ("gcd_sycophancy", "mbpp_reward_hacking", "cebab_spurious", "cmv_toxicity", "trait_toy", "organism",
            "conversations")

__all__ = ["BUILT_IN", "Decoding", "Elicitation", "Metrics", "Setting", "get", "is_known"]


def _module_path(name: str) -> str:
  return f"{__name__}.{name}" if name in BUILT_IN else name


@functools.lru_cache(maxsize=None)
def get(name: str) -> Setting:
  """The Setting called `name` (a built-in name or a module path); a ConfigError names the fix."""
  path = _module_path(name)
  try:
    module = importlib.import_module(path)
  except ModuleNotFoundError as e:
    if not (e.name and path.startswith(e.name)):
      raise  # the module exists but imports something missing: that traceback is the useful one
    if "." not in name:
      raise ConfigError(f"setting {name!r} is unknown; choose one of {', '.join(BUILT_IN)}, or give the module "
                        "path of your own (a module that defines SETTING = Setting(...)).") from None
    raise ConfigError(f"setting {name!r}: no module {path!r} can be imported; check the name, or put its "
                      "package on PYTHONPATH.") from None
  except ValueError:
    raise ConfigError(f"setting {name!r} is not a module name; choose one of {', '.join(BUILT_IN)}.") from None
  setting = getattr(module, "SETTING", None)
  if not isinstance(setting, Setting):
    raise ConfigError(f"setting {name!r}: module {path!r} defines no SETTING = Setting(...).")
  return setting


def is_known(name: str) -> bool:
  try:
    get(name)
  except ConfigError:
    return False
  return True
