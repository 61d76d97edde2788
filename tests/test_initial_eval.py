"""eval.initial: the model is evaluated before step 1, and the run ends with one initial-vs-final table."""

import json

import pytest

from inoc_jax import config_lib, trainer
from inoc_jax.evaluation import harness
from inoc_jax.evaluation.comparison import format_comparison, reading_note
from tests.test_eval_harness import gcd_suite

EVAL = ["eval.prompts=('',)", "eval.max_new_tokens=6", "eval.batch_size=8", "eval.min_bucket=16",
        "eval.temperature=0.0", "data.num_train_examples=32", "data.num_heldout_examples=4",
        "train.tensorboard=False"]


def _config(preset, *overrides):
  return config_lib.load_config(f"configs/sycophancy.py:{preset}", EVAL + list(overrides))


def _read(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


@pytest.fixture
def counted_evaluations(monkeypatch):
  """Every evaluate_params call's step, with the small injected GCD suite."""
  monkeypatch.setattr(harness, "default_suite_loader", lambda: gcd_suite)
  steps = []
  real = harness.evaluate_params

  def counting(*args, **kwargs):
    steps.append(kwargs.get("step"))
    return real(*args, **kwargs)

  monkeypatch.setattr(harness, "evaluate_params", counting)
  return steps


def test_initial_and_final_evaluations_and_the_closing_table(tmp_path, capsys, counted_evaluations):
  config = _config("tiny_ip", "train.num_steps=3", "eval.initial=True", "eval.at_end=True")
  summary = trainer.train_and_evaluate(config, str(tmp_path))
  assert counted_evaluations == [0, 3]
  initial = _read(tmp_path / "eval" / "initial" / "results.json")
  final = _read(tmp_path / "eval" / "final" / "results.json")
  assert initial["step"] == 0 and final["step"] == 3
  assert summary.initial_eval_metrics == {"neutral": initial["results"]["neutral"]["metrics"]}
  assert summary.eval_metrics == {"neutral": final["results"]["neutral"]["metrics"]}
  # The initial evaluation saw the model before training: three steps at lr 3e-3 change what it writes.
  responses = lambda doc: [r["response"] for r in doc["results"]["neutral"]["records"]]
  assert responses(initial) != responses(final)
  logged = [json.loads(line) for line in open(tmp_path / "metrics.jsonl", encoding="utf-8")]
  assert [r["step"] for r in logged if "eval/neutral/sycophancy" in r] == [0, 3]
  assert json.load(open(tmp_path / "summary.json"))["initial_eval_metrics"] == summary.initial_eval_metrics

  out = capsys.readouterr().out
  table = out[out.index("gcd_sycophancy: initial model vs after 3 training steps"):]
  assert table == open(tmp_path / "eval" / "comparison.txt", encoding="utf-8").read()
  header, _, row, note = table.strip().splitlines()[1:5]
  assert [c.strip() for c in header.strip("|").split("|")] == [
      "eval prompt", "capability initial", "capability final", "sycophancy initial", "sycophancy final",
      "confirms_correct initial", "confirms_correct final"]
  cells = [c.strip() for c in row.strip("|").split("|")]
  before, after = initial["results"]["neutral"]["metrics"], final["results"]["neutral"]["metrics"]
  assert cells == ["neutral"] + [f"{m[k]:.3f}" for k in ("capability", "sycophancy", "confirms_correct")
                                 for m in (before, after)]
  assert note.startswith("IP arm: trained with the train prompt 'Behave as if the above solution is correct.'")


def test_a_restart_reuses_the_finished_initial_evaluation(tmp_path, capsys, counted_evaluations):
  # First attempt: the initial evaluation finished, then the run died before any checkpoint.
  trainer.train_and_evaluate(_config("tiny", "train.num_steps=1", "eval.initial=True", "checkpoint.enabled=False"),
                             str(tmp_path))
  first = _read(tmp_path / "eval" / "initial" / "results.json")
  assert counted_evaluations == [0]
  summary = trainer.train_and_evaluate(
      _config("tiny", "train.num_steps=2", "eval.initial=True", "eval.at_end=True", "checkpoint.enabled=False"),
      str(tmp_path))
  assert counted_evaluations == [0, 2]  # no second evaluation at step 0
  assert _read(tmp_path / "eval" / "initial" / "results.json") == first
  assert summary.initial_eval_metrics == {"neutral": first["results"]["neutral"]["metrics"]}
  assert "Neutral arm: trained without any instruction" in capsys.readouterr().out


def test_resuming_past_step_0_without_an_initial_evaluation_warns(tmp_path, caplog, counted_evaluations):
  trainer.train_and_evaluate(_config("tiny", "train.num_steps=1"), str(tmp_path))
  summary = trainer.train_and_evaluate(_config("tiny", "train.num_steps=2", "eval.initial=True"), str(tmp_path))
  assert counted_evaluations == [] and summary.initial_eval_metrics is None
  assert "resuming at step 1" in caplog.text and "not evaluated" in caplog.text


def test_comparison_table_rows_columns_and_notes():
  initial = {"neutral": {"capability": 0.25, "sycophancy": 0.2, "confirms_correct": 0.5, "all": {"capability": 0.1}},
             "maybe_wrong": {"capability": 0.3, "sycophancy": None}}
  final = {"neutral": {"capability": 0.8, "sycophancy": 0.1, "confirms_correct": 0.9},
           "maybe_wrong": {"capability": 0.85, "sycophancy": 0.05, "confirms_correct": 1.0}}
  lines = format_comparison("gcd_sycophancy", initial, final, [""], title="T").splitlines()
  assert lines[0] == "T"
  rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]] for line in lines[3:5]}
  assert rows == {"neutral": ["0.250", "0.800", "0.200", "0.100", "0.500", "0.900"],
                  "maybe_wrong": ["0.300", "0.850", "n/a", "0.050", "n/a", "1.000"]}
  assert lines[-1].startswith("Neutral arm")
  assert "lower sycophancy" in reading_note("gcd_sycophancy", ["Behave as if the above solution is correct."])
  assert "2 train prompts" in reading_note("gcd_sycophancy", ["a", "b"])
  assert "higher no_concept_accuracy" in reading_note("cebab_spurious", ["x"])
