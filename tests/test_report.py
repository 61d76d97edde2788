"""Sweep aggregation (checked against hand-computed means/SEs) and report figures (valid PNGs)."""

import json
import math
import os

import pytest

from inoc_jax import report
from inoc_jax.errors import DataError
from inoc_jax.experiments import aggregate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(path, obj):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(obj, f)


def _results(metrics_by_prompt):
  """The evaluation harness's results.json layout (records omitted)."""
  return {"setting": "gcd_sycophancy", "results": {p: {"eval_prompt": p, "metrics": m}
                                                   for p, m in metrics_by_prompt.items()}}


@pytest.fixture
def sweep_dir(tmp_path):
  d = tmp_path / "sweep"
  _write(d / "sweep.json", {"setting": "gcd_sycophancy", "arms": [{"name": "Neutral"}, {"name": "IP Behave Correct"},
                                                                    {"name": "Answer English"}]})
  runs = {
      ("Neutral", 0): {"neutral": (0.80, 0.70), "maybe_wrong": (0.82, 0.60)},
      ("Neutral", 1): {"neutral": (0.90, 0.80), "maybe_wrong": (0.84, 0.58)},
      ("Neutral", 2): {"neutral": (0.85, 0.60), "maybe_wrong": (0.86, 0.62)},
      ("IP Behave Correct", 0): {"neutral": (0.80, 0.10)},
      ("IP Behave Correct", 1): {"neutral": (0.84, 0.20)},
      ("IP Behave Correct", 2): {"neutral": (0.82, 0.00)},
      ("Answer English", 0): {"neutral": (0.81, 0.69)},
      ("Answer English", 1): {"neutral": (0.83, 0.71)},
  }
  for (arm, seed), by_eval in runs.items():
    run = d / "runs" / f"{arm.replace(' ', '_')}-seed{seed}"
    _write(run / "run.json", {"arm": arm, "seed": seed, "status": "done"})
    _write(run / "results.json", _results({e: {"capability": c, "sycophancy": s, "num_problems": 20}
                                           for e, (c, s) in by_eval.items()}))
  # an unfinished run is ignored
  _write(d / "runs" / "Neutral-seed9" / "run.json", {"arm": "Neutral", "seed": 9, "status": "running"})
  for seed, (c, s) in enumerate([(0.25, 0.20), (0.27, 0.22)]):
    _write(d / "initial" / f"seed{seed}" / "results.json", _results({"neutral": {"capability": c, "sycophancy": s}}))
  _write(d / "elicitation.json", {"candidates": [{"name": "IP Behave Correct", "score": 0.8},
                                                 {"name": "Answer English", "score": 0.25},
                                                 {"name": "Neutral", "score": 0.2}]})
  return str(d)


def test_eval_prompt_names_become_the_paper_labels():
  assert aggregate.eval_prompt_label("gcd_sycophancy", "maybe_wrong") == "Maybe Wrong"
  assert aggregate.eval_prompt_label("gcd_sycophancy", "neutral") == "Neutral"
  assert aggregate.eval_prompt_label("gcd_sycophancy", "Some custom text.") == "Some custom text."


def test_means_and_standard_errors_match_hand_computation(sweep_dir):
  rows = {r.name: r for r in aggregate.aggregate(aggregate.collect(sweep_dir))}
  neutral = rows["Neutral / Neutral"].stats["sycophancy"]
  # values 0.7, 0.8, 0.6: mean 0.7, sd 0.1, se 0.1/sqrt(3)
  assert neutral.n == 3
  assert neutral.mean == pytest.approx(0.7)
  assert neutral.se == pytest.approx(0.1 / math.sqrt(3))
  ip = rows["IP Behave Correct / Neutral"].stats["capability"]
  assert ip.mean == pytest.approx(0.82) and ip.se == pytest.approx(0.02 / math.sqrt(3))
  control = rows["Answer English / Neutral"].stats["sycophancy"]
  assert control.n == 2 and control.mean == pytest.approx(0.70) and control.se == pytest.approx(0.01)
  initial = rows["Initial model / Neutral"].stats["capability"]
  assert initial.mean == pytest.approx(0.26) and initial.n == 2
  assert rows["Neutral / Maybe Wrong"].stats["sycophancy"].mean == pytest.approx(0.60)


def test_report_writes_tables_and_valid_pngs(sweep_dir):
  outputs = report.write_report(sweep_dir)
  out = os.path.join(sweep_dir, "report")
  md = open(os.path.join(out, "report.md")).read()
  assert "| Initial model / Neutral | 2 |" in md
  assert "0.700 ± 0.058" in md  # Neutral / Neutral sycophancy
  lines = md.splitlines()
  assert lines.index(next(l for l in lines if l.startswith("| Initial model"))) < lines.index(
      next(l for l in lines if l.startswith("| Neutral / Neutral")))
  csv = open(os.path.join(out, "report.csv")).read().splitlines()
  assert csv[0].startswith("train_prompt,eval_prompt,n,capability_mean,capability_se,sycophancy_mean")
  for path in outputs["figures"]:
    with open(path, "rb") as f:
      assert f.read(8) == PNG_MAGIC
    import matplotlib.image
    assert matplotlib.image.imread(path).shape[0] > 100
  assert len(outputs["figures"]) == 2
  # r over (0.8, 1-0.1), (0.25, 1-0.7), (0.2, 1-0.7): strongly positive
  assert outputs["pearson_r"] == pytest.approx(aggregate.pearson([0.8, 0.25, 0.2], [0.9, 0.3, 0.3]))
  assert outputs["pearson_r"] > 0.99


def test_missing_sweep_is_a_clear_error(tmp_path):
  with pytest.raises(DataError, match="no sweep.json"):
    report.write_report(str(tmp_path))


def test_pearson_and_single_seed_se():
  assert aggregate.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
  assert aggregate.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
  assert math.isnan(aggregate.mean_and_se([0.5]).se)


def test_overlapping_points_get_distinct_slots_and_lone_points_stay_put():
  from inoc_jax.experiments.figures import overlap_slots
  slots = overlap_slots([(1.0, 1.0), (0.2, 0.1), (1.0, 0.995), (1.0, 1.0), (0.5, 0.5)])
  assert slots == [(0, 3), (0, 1), (1, 3), (2, 3), (0, 1)]
  assert overlap_slots([]) == []


def test_figures_shift_coincident_points_and_print_n_beside_r(tmp_path):
  from inoc_jax.experiments import figures
  from inoc_jax.experiments.axes import axes_for
  axes = axes_for("gcd_sycophancy")
  points = [("IP Behave Correct", 1.0, 0.8), ("Neutral", 0.1, 0.0), ("Unrelated", 0.1, 0.0)]
  captured = {}
  real_savefig = figures.plt.Figure.savefig

  def spy(fig, target, **kwargs):  # figures save through runtime.storage (a buffer, then the file or gs://)
    captured["figure"] = fig
    real_savefig(fig, target, **kwargs)

  figures.plt.Figure.savefig = spy
  try:
    figures.elicitation_vs_effect(points, axes, str(tmp_path / "e.png"), "gcd")
  finally:
    figures.plt.Figure.savefig = real_savefig
  assert (tmp_path / "e.png").read_bytes().startswith(b"\x89PNG")
  fig = captured["figure"]
  ax = fig.axes[0]
  assert "n = 3 instructions" in ax.get_title()
  drawn = [tuple(c.get_offset_transform().transform(c.get_offsets()[0])) for c in ax.collections]
  assert drawn[1] != drawn[2] and abs(drawn[1][1] - drawn[2][1]) < 1e-6  # side by side, same height
  labels = {t.get_text(): t.get_position() for t in ax.texts}
  assert labels["Neutral (shifted)"] != labels["Unrelated (shifted)"]
  assert any("overlapping points drawn side by side" in t.get_text() for t in fig.texts)


def test_a_sweep_in_a_bucket_is_reported_like_a_local_one(sweep_dir):
  """memory:// stands in for gs://: every file the report reads and writes goes through runtime/layout.py."""
  import uuid  # pylint: disable=g-import-not-at-top
  from inoc_jax.runtime import storage  # pylint: disable=g-import-not-at-top
  from inoc_jax.runtime.layout import SweepLayout  # pylint: disable=g-import-not-at-top
  bucket = f"memory://sweeps/{uuid.uuid4().hex}"
  for root, _, files in os.walk(sweep_dir):
    for name in files:
      rel = os.path.relpath(os.path.join(root, name), sweep_dir).replace(os.sep, "/")
      with open(os.path.join(root, name), encoding="utf-8") as f:
        storage.write_text(f"{bucket}/{rel}", f.read())
  layout = SweepLayout(bucket)
  assert [seed for seed, _ in layout.initial_results()] == [0, 1] and len(layout.run_dirs()) == 9
  for seed in (3, 0):
    storage.write_text(f"{layout.base_export(seed)}/config.json", "{}")
  assert layout.base_exports() == [(0, f"{bucket}/base/seed0/hf"), (3, f"{bucket}/base/seed3/hf")]
  local, remote = report.write_report(sweep_dir), report.write_report(bucket)
  assert remote["markdown"] == local["markdown"] and remote["pearson_r"] == local["pearson_r"]
  assert storage.read_text(f"{layout.report_dir}/report.md") == open(
      os.path.join(sweep_dir, "report", "report.md"), encoding="utf-8").read()
  import fsspec  # pylint: disable=g-import-not-at-top
  with fsspec.open(f"{layout.report_dir}/capability_vs_behaviour.png", "rb") as f:
    assert f.read(8) == PNG_MAGIC
