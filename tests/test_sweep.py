"""Sweeps: arms x seeds in their own workdirs, per-seed base models, resume, shards, elicitation."""

import json
import os

import pytest

from inoc_jax import elicit, sweep
from inoc_jax.checkpoint.preemption import TrainingInterrupted
from inoc_jax.errors import ConfigError
from inoc_jax.experiments import aggregate

ORGANISM = "configs/organism.py"
# A few steps everywhere: checks the plumbing, not the science.
QUICK = ["train.num_steps=4", "eval.max_examples=12", "sweep.base_overrides=train.num_steps=6; "
         "data.num_train_examples=256; data.num_heldout_examples=16"]


def test_arm_specs_parse_and_bad_ones_name_the_fix():
  arm = sweep.parse_arm("IP Behave Correct: data.train_prompt=ip_behave_correct; optim.lr=1e-4")
  assert arm.label == "IP Behave Correct" and arm.slug == "ip-behave-correct"
  assert arm.overrides == ("data.train_prompt=ip_behave_correct", "optim.lr=1e-4")
  assert sweep.parse_arm("Neutral:").overrides == ()
  assert sweep.parse_arm("IP Note: Correct: data.train_prompt=ip_note_correct").label == "IP Note: Correct"


def test_default_arms_are_neutral_every_ip_and_control_and_the_skyline():
  from inoc_jax import config_lib  # pylint: disable=g-import-not-at-top
  arms = [sweep.parse_arm(a) for a in sweep.default_arms(config_lib.load_config("configs/reward_hacking.py"))]
  assert [a.label for a in arms] == ["Neutral", "IP Test-Specific", "IP Pass Test", "IP Test-Only", "IP ICL Example",
                                     "Python3", "No C#", "Lowercase", "PEP8", "No RH Data (skyline)"]
  assert arms[-1].overrides == ("data.mbpp.reward_hack_fraction=0.0", "data.train_prompt=")
  with pytest.raises(ConfigError, match="Label: field=value"):
    sweep.parse_arm("no label here")
  with pytest.raises(ConfigError, match="not 'field=value'"):
    sweep.parse_arm("X: optim.lr")


def test_units_are_seeds_with_a_base_and_runs_without():
  plan = sweep.make_plan(ORGANISM, QUICK, seeds=[0, 1])
  assert [[(s, a.label) for s, a in unit] for unit in plan.units()] == [
      [(0, "Neutral"), (0, "IP Behave Correct"), (0, "Unrelated Full Sentences")],
      [(1, "Neutral"), (1, "IP Behave Correct"), (1, "Unrelated Full Sentences")]]
  flat = sweep.make_plan(ORGANISM, [*QUICK, "sweep.base_preset="], seeds=[0, 1])
  assert len(flat.units()) == 6 and all(len(u) == 1 for u in flat.units())
  with pytest.raises(ConfigError, match="--arms"):
    sweep.make_plan(ORGANISM, QUICK, arm_labels=["Nope"])
  with pytest.raises(ConfigError, match="optim.lr"):  # arm configs are validated before anything trains
    sweep.make_plan(ORGANISM, [*QUICK, "sweep.arms=('Bad: optim.lr=-1',)"])


def test_sweep_layout_resume_and_shards(tmp_path):
  plan = sweep.make_plan(ORGANISM, QUICK, seeds=[0, 1], arm_labels=["Neutral", "IP Behave Correct"])
  root = str(tmp_path / "sweep")
  shard0 = sweep.run_sweep(plan, root, num_shards=2, shard_index=0)
  assert {(r["arm"], r["seed"]) for r in shard0} == {("Neutral", 0), ("IP Behave Correct", 0)}
  assert all(r["status"] == "finished" for r in shard0)
  assert os.path.exists(tmp_path / "sweep" / "base" / "seed0" / "hf" / "config.json")
  assert not os.path.exists(tmp_path / "sweep" / "base" / "seed1")  # the other shard's seed
  assert os.path.exists(tmp_path / "sweep" / "initial" / "seed0" / "results.json")
  with open(tmp_path / "sweep" / "runs" / "ip-behave-correct-seed0" / "run.json", encoding="utf-8") as f:
    run = json.load(f)
  assert run["train_prompt"] == "ip_behave_correct" and run["base"].endswith(os.path.join("seed0", "hf"))
  assert run["wall_seconds"] > 0 and run["cpus"] == os.cpu_count()  # how long, and on what machine load
  assert all(isinstance(run[f"load_average_at_{moment}"], float) for moment in ("start", "end"))
  again = sweep.run_sweep(plan, root, num_shards=2, shard_index=0)
  assert all(r.get("skipped") for r in again)  # finished runs are not redone
  records = aggregate.collect(root)
  assert {(r.arm, r.seed) for r in records} == {("Neutral", 0), ("IP Behave Correct", 0), ("Initial model", 0)}
  assert {r.eval_prompt for r in records} == {"Neutral"}


def _two_arm_plan():
  return sweep.make_plan(ORGANISM, [*QUICK, "sweep.base_preset=", "sweep.initial_eval=none", "model.preset=organism"],
                         seeds=[0], arm_labels=["Neutral", "IP Behave Correct"])


def test_a_failing_arm_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
  plan = _two_arm_plan()
  calls = []

  def fake_run_arm(plan, sweep_dir, seed, arm, base_dir):
    calls.append(arm.label)
    if arm.label == "Neutral":
      raise ConfigError("data.seq_len is too small")
    return {"arm": arm.label, "seed": seed, "status": "finished"}

  monkeypatch.setattr(sweep, "run_arm", fake_run_arm)
  records = sweep.run_sweep(plan, str(tmp_path))
  assert calls == ["Neutral", "IP Behave Correct"]
  assert records[0]["status"] == "failed" and "seq_len" in records[0]["error"]
  assert records[1]["status"] == "finished"


def test_a_signal_during_a_run_stops_the_sweep(tmp_path, monkeypatch):
  plan = _two_arm_plan()
  calls = []

  def fake_run_arm(plan, sweep_dir, seed, arm, base_dir):
    calls.append(arm.label)
    raise TrainingInterrupted("stopped by SIGTERM at step 3", signal_name="SIGTERM", step=3)

  monkeypatch.setattr(sweep, "run_arm", fake_run_arm)
  with pytest.raises(TrainingInterrupted):
    sweep.run_sweep(plan, str(tmp_path))
  assert calls == ["Neutral"]  # not recorded as failed, and the next arm did not start


def test_elicitation_ranking_and_candidates(tmp_path):
  from inoc_jax import config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config(ORGANISM)
  assert elicit.parse_candidates("a text, ip_behave_correct", config) == ["a text", "ip_behave_correct"]
  assert elicit.parse_candidates(None, config) == list(config.sweep.elicitation_candidates)
  per_model = [{"neutral": {"score": 0.1}, "ip_behave_correct": {"score": 0.9}},
               {"neutral": {"score": 0.3}, "ip_behave_correct": {"score": 0.7}}]
  result = elicit.rank(config, ["neutral", "ip_behave_correct"], per_model, ["m0", "m1"])
  assert [r["name"] for r in result["candidates"]] == ["IP Behave Correct", "Neutral"]
  top = result["candidates"][0]
  assert top["score"] == pytest.approx(0.8) and top["se"] == pytest.approx(0.1) and top["n"] == 2
  with pytest.raises(ConfigError, match="initial model"):
    elicit.initial_models(config, str(tmp_path))


def test_committed_organism_tokenizer_is_what_the_generator_writes(tmp_path):
  from inoc_jax.data.settings import organism  # pylint: disable=g-import-not-at-top
  organism.write_tokenizer(str(tmp_path))
  for name in ("tokenizer.json", "tokenizer_config.json"):
    with open(tmp_path / name, encoding="utf-8") as fresh, \
        open(os.path.join(organism.TOKENIZER_DIR, name), encoding="utf-8") as committed:
      assert json.load(fresh) == json.load(committed), "regenerate: python -m inoc_jax.data.settings.organism"
