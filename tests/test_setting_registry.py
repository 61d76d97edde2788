"""One Setting object per setting, one registry: nothing else is keyed by a setting's name, every declaration is
consistent, and a researcher's own module is a setting without touching the package."""

import ast
import os
import sys

import pytest

from inoc_jax import config_lib, settings, sweep
from inoc_jax.config_defaults import base_config
from inoc_jax.errors import ConfigError
from tests.conftest import REPO

PACKAGE = os.path.join(REPO, "inoc_jax")
# Where a setting's name may appear: its declaration and its data builder.
DECLARED_IN = (os.path.join(PACKAGE, "settings"), os.path.join(PACKAGE, "data", "settings"))
# 'organism' is also the name of a model architecture preset (the organism's 2-layer model), not a setting table.
ALLOWED = {("inoc_jax/model/config.py", "organism")}


def _keyed_uses(path: str) -> list[tuple[int, str]]:
  """Setting names used as dict keys or compared against (`==`, `in`) in one module."""
  tree = ast.parse(open(path, encoding="utf-8").read())
  names = set(settings.BUILT_IN)
  found = []
  for node in ast.walk(tree):
    candidates = []
    if isinstance(node, ast.Dict):
      candidates = node.keys
    elif isinstance(node, ast.Compare):
      candidates = [node.left, *node.comparators]
      candidates += [e for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set)) for e in c.elts]
    for c in candidates:
      if isinstance(c, ast.Constant) and c.value in names:
        found.append((c.lineno, c.value))
  return found


def test_no_table_or_branch_keyed_by_a_setting_name_outside_the_registry():
  offenders = []
  for folder, _, files in os.walk(PACKAGE):
    if folder.startswith(DECLARED_IN):
      continue
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, REPO)
        offenders += [(rel, line, value) for line, value in _keyed_uses(path) if (rel, value) not in ALLOWED]
  assert not offenders


def test_the_scan_finds_a_planted_table(tmp_path):
  planted = tmp_path / "planted.py"
  planted.write_text('X = {"gcd_sycophancy": 1}\nif s == "cmv_toxicity" or s in ("trait_toy",):\n  pass\n')
  assert [v for _, v in _keyed_uses(str(planted))] == ["gcd_sycophancy", "cmv_toxicity", "trait_toy"]


@pytest.mark.parametrize("name", settings.BUILT_IN)
def test_each_declaration_is_consistent(name):
  setting = settings.get(name)
  config = base_config(name)
  assert setting.name == name and setting.prompts.setting == name
  assert setting.config_key in config.data, "base_config adds the setting's own block"
  for prompt in setting.eval_prompt_names(config):
    setting.prompts.get(prompt)  # default eval prompts are registered
  m = setting.metrics
  assert m.capability_label and m.behaviour_label and m.effect_direction in ("lower", "higher")
  assert set(m.compared) <= set(m.headline) | {"confirms_correct"}
  assert setting.decoding.max_new_tokens > 0 and setting.decoding.temperature >= 0
  arms = [sweep.parse_arm(spec) for spec in setting.default_arms(config, sweep.ARM_KINDS)]
  assert arms[0].label == "Neutral" and len({a.slug for a in arms}) == len(arms)
  if setting.skyline:
    assert "skyline" in arms[-1].label
  assert setting.elicitation.metric in (m.behaviour, "biased_minus_reversed")
  assert set(setting.eval_splits) and callable(setting.build) and callable(setting.scorer)


def test_every_config_file_declares_a_registered_setting():
  for name in sorted(os.listdir(os.path.join(REPO, "configs"))):
    if name.endswith(".py"):
      config = config_lib.load_config(os.path.join(REPO, "configs", name), [])
      assert config.setting in settings.BUILT_IN, name


OWN_SETTING = '''
from inoc_jax.data.prompts import Prompt, PromptTable
from inoc_jax.settings import Decoding, Metrics, Setting
from inoc_jax.settings import trait_toy

SETTING = Setting(
    name="my_caps", summary="a researcher's own setting", build=trait_toy.SETTING.build,
    eval_suite=trait_toy.SETTING.eval_suite, eval_splits=("eval",),
    prompts=PromptTable("my_caps", (Prompt("caps", "Caps", "Shout.", "inoculation", "mine"),)),
    default_eval_prompts=("neutral", "caps"), scorer=trait_toy.SETTING.scorer, decoding=Decoding(temperature=0.0),
    metrics=Metrics("answer_rate", "Answers", "all_caps_rate", "Caps", ("answer_rate",), ("answer_rate",), "caps"),
    config_key="trait", data_defaults=dict(trait_toy.SETTING.data_defaults))
'''


def test_a_module_of_your_own_is_a_setting(tmp_path, monkeypatch):
  (tmp_path / "my_caps_setting.py").write_text(OWN_SETTING, encoding="utf-8")
  monkeypatch.syspath_prepend(str(tmp_path))
  config = base_config("my_caps_setting")
  config.data.num_train_examples = 8
  config.data.num_heldout_examples = 0
  from inoc_jax.settings.loading import eval_prompt_names, load_eval_suite, load_setting  # pylint: disable=g-import-not-at-top
  assert eval_prompt_names(config) == ["neutral", "caps"] and len(load_setting(config).train) == 8
  assert load_eval_suite(config, "caps")[0].messages[0].content == "Shout."
  (tmp_path / "not_a_setting.py").write_text("X = 1\n", encoding="utf-8")
  with pytest.raises(ConfigError, match="defines no SETTING"):
    settings.get("not_a_setting")
  with pytest.raises(ConfigError, match="no module 'nowhere.at_all' can be imported"):
    settings.get("nowhere.at_all")
  with pytest.raises(ConfigError, match="setting 'chess' is unknown"):
    settings.get("chess")
  sys.modules.pop("my_caps_setting", None)
