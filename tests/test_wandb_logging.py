"""Weights & Biases beside metrics.jsonl: the same scalars at the same steps, a stable id across resumes, sweeps
grouped; a fake `wandb` module records the calls (the real package is optional and not needed offline)."""

import json
import os
import sys
import types

import pytest

from inoc_jax import config_lib, trainer
from inoc_jax.errors import ConfigError
from tests.conftest import REPO

TINY = f"{REPO}/configs/sycophancy.py:tiny"
SMALL = ["train.num_steps=3", "data.num_train_examples=16", "data.num_heldout_examples=0",
         "data.global_batch_size=4", "train.log_every=1", "checkpoint.enabled=False"]


class FakeRun:
  def __init__(self, calls, **kwargs):
    self.calls, self.kwargs, self.logged, self.finished = calls, kwargs, [], False
    calls.append(self)

  def log(self, values, step):
    self.logged.append((step, dict(values)))

  def finish(self):
    self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
  calls = []
  module = types.ModuleType("wandb")
  module.init = lambda **kwargs: FakeRun(calls, **kwargs)
  monkeypatch.setitem(sys.modules, "wandb", module)
  return calls


def test_a_run_logs_what_metrics_jsonl_holds(tmp_path, fake_wandb):
  config = config_lib.load_config(TINY, [*SMALL, "log.wandb_project=ip", "log.wandb_mode=offline"])
  trainer.train_and_evaluate(config, str(tmp_path / "run"))
  (run,) = fake_wandb
  assert run.finished and run.kwargs["project"] == "ip" and run.kwargs["mode"] == "offline"
  assert run.kwargs["name"] == "run" and run.kwargs["config"]["setting"] == "gcd_sycophancy"
  rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl", encoding="utf-8")]
  expected = [(r["step"], {k: v for k, v in r.items() if k not in ("step", "time")}) for r in rows]
  assert run.logged == expected and [s for s, v in run.logged if "train/loss" in v] == [1, 2, 3]
  again = config_lib.load_config(TINY, [*SMALL, "log.wandb_project=ip"])
  trainer.train_and_evaluate(again, str(tmp_path / "run"))  # finished: the same W&B run id
  assert fake_wandb[1].kwargs["id"] == run.kwargs["id"] and run.kwargs["resume"] == "allow"


def test_no_project_no_wandb_and_clear_errors(tmp_path, fake_wandb, monkeypatch):
  trainer.train_and_evaluate(config_lib.load_config(TINY, SMALL), str(tmp_path / "plain"))
  assert not fake_wandb
  with pytest.raises(ConfigError, match="log.wandb_mode must be one of"):
    config_lib.validate(config_lib.load_config(TINY, [*SMALL, "log.wandb_mode=cloudy"]), 1)
  monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
  with pytest.raises(ConfigError, match="wandb package is not installed"):
    trainer.train_and_evaluate(config_lib.load_config(TINY, [*SMALL, "log.wandb_project=ip"]), str(tmp_path / "x"))


def test_a_sweep_groups_its_runs(tmp_path, monkeypatch):
  """Each arm's run config names the sweep's group and the run (training itself is the test above's)."""
  from inoc_jax import sweep  # pylint: disable=g-import-not-at-top
  from inoc_jax.runtime.layout import RunLayout  # pylint: disable=g-import-not-at-top
  seen = []

  def fake_train(config, workdir):
    seen.append((config.log.wandb_group, config.log.wandb_name))
    layout = RunLayout(workdir)
    os.makedirs(layout.eval_dir("final"))
    open(layout.eval_results("final"), "w", encoding="utf-8").write("{}")
    return types.SimpleNamespace(wall_seconds=0.0, final_loss=1.0)

  monkeypatch.setattr(trainer, "train_and_evaluate", fake_train)
  plan = sweep.make_plan(TINY, [*SMALL, "log.wandb_project=ip", "sweep.initial_eval=none"], seeds=[0],
                         arm_labels=["Neutral", "IP Behave Correct"])
  sweep.run_sweep(plan, str(tmp_path / "my-sweep"))
  assert seen == [("my-sweep", "neutral-seed0"), ("my-sweep", "ip-behave-correct-seed0")]
