"""Reading a sweep directory and aggregating metrics over seeds (mean +- standard error).

Sweep layout (written by `inoc_jax.sweep`):

  SWEEP/sweep.json                     setting, config, arms, seeds
  SWEEP/runs/<run>/run.json            {"arm": label, "train_prompt": text, "seed": k, "status": ...}
  SWEEP/runs/<run>/results.json        evaluation output (metrics per eval prompt)
  SWEEP/initial/seed<k>/results.json   the initial (not fine-tuned) model, row "Initial model"

Rows are named as in the paper: `Train prompt / Eval prompt`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from typing import Any, Iterable, Mapping

from inoc_jax.errors import DataError
from inoc_jax.runtime import storage
from inoc_jax.runtime.layout import SweepLayout

INITIAL_ARM = "Initial model"


@dataclasses.dataclass(frozen=True)
class RunMetrics:
  """One evaluated run under one eval prompt."""

  arm: str
  eval_prompt: str
  seed: int
  metrics: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class Stat:
  mean: float
  se: float  # standard error of the mean over seeds (ddof=1); nan for a single seed
  n: int


@dataclasses.dataclass(frozen=True)
class Row:
  arm: str
  eval_prompt: str
  stats: Mapping[str, Stat]

  @property
  def name(self) -> str:
    return f"{self.arm} / {self.eval_prompt}"


def mean_and_se(values: Iterable[float]) -> Stat:
  values = [float(v) for v in values]
  n = len(values)
  if n == 0:
    return Stat(math.nan, math.nan, 0)
  mean = sum(values) / n
  if n == 1:
    return Stat(mean, math.nan, 1)
  variance = sum((v - mean) ** 2 for v in values) / (n - 1)
  return Stat(mean, math.sqrt(variance / n), n)


def _load_json(path: str) -> Any:
  try:
    return json.loads(storage.read_text(path))
  except json.JSONDecodeError as e:
    raise DataError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); re-run that evaluation.") from None


def eval_prompt_label(setting: str, prompt: str) -> str:
  """'neutral' / a registry name -> the paper's label (e.g. 'IP Behave Correct'); other text as given."""
  from inoc_jax import settings  # pylint: disable=g-import-not-at-top
  if not prompt or prompt == "neutral":
    return "Neutral"
  return settings.get(setting).prompts.label(prompt) if settings.is_known(setting) else prompt


def metrics_by_eval_prompt(results: Mapping[str, Any]) -> dict[str, dict[str, float]]:
  """results.json (evaluation harness) -> {eval prompt label: {metric: value}}, numeric metrics only."""
  out = {}
  for prompt, block in results.get("results", {}).items():
    label = eval_prompt_label(results.get("setting", ""), block.get("eval_prompt", prompt))
    out[label] = {k: float(v) for k, v in block.get("metrics", {}).items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)}
  return out


def collect(sweep_dir: str) -> list[RunMetrics]:
  """Every finished run (and initial-model evaluation) of a sweep, local or gs://."""
  layout = SweepLayout(sweep_dir)
  if not storage.exists(layout.sweep_json) and not storage.exists(sweep_dir):
    raise DataError(f"Sweep directory {sweep_dir!r} does not exist; pass the directory given to the sweep.")
  records = []
  for run_dir in layout.run_dirs():
    run = _load_json(layout.run_record(run_dir))
    results_path = layout.run_results(run_dir)
    if not storage.exists(results_path):
      continue  # unfinished run
    for label, metrics in metrics_by_eval_prompt(_load_json(results_path)).items():
      records.append(RunMetrics(run["arm"], label, int(run["seed"]), metrics))
  for seed, results_path in layout.initial_results():
    for label, metrics in metrics_by_eval_prompt(_load_json(results_path)).items():
      records.append(RunMetrics(INITIAL_ARM, label, seed, metrics))
  if not records:
    raise DataError(f"No evaluated runs under {sweep_dir!r} (no runs/*/results.json); run the sweep first.")
  return records


def aggregate(records: Iterable[RunMetrics], arm_order: Iterable[str] = ()) -> list[Row]:
  """Groups by (arm, eval prompt) and reduces every metric over seeds. Initial model first."""
  grouped: dict[tuple[str, str], dict[str, list[float]]] = collections.defaultdict(
      lambda: collections.defaultdict(list))
  for record in records:
    for metric, value in record.metrics.items():
      grouped[(record.arm, record.eval_prompt)][metric].append(value)
  order = {arm: i for i, arm in enumerate([INITIAL_ARM, *arm_order])}
  keys = sorted(grouped, key=lambda k: (order.get(k[0], len(order)), k[0], k[1] != "Neutral", k[1]))
  return [Row(arm, eval_prompt, {m: mean_and_se(v) for m, v in grouped[(arm, eval_prompt)].items()})
          for arm, eval_prompt in keys]


def _fmt(stat: Stat | None) -> str:
  if stat is None or stat.n == 0:
    return ""
  if math.isnan(stat.se):
    return f"{stat.mean:.3f}"
  return f"{stat.mean:.3f} ± {stat.se:.3f}"


def table_markdown(rows: list[Row], metrics: list[str]) -> str:
  header = "| Train prompt / Eval prompt | n | " + " | ".join(metrics) + " |"
  lines = [header, "|" + "---|" * (len(metrics) + 2)]
  for row in rows:
    n = max((s.n for s in row.stats.values()), default=0)
    lines.append(f"| {row.name} | {n} | " + " | ".join(_fmt(row.stats.get(m)) for m in metrics) + " |")
  return "\n".join(lines)


def table_csv(rows: list[Row], metrics: list[str]) -> str:
  cols = ["train_prompt", "eval_prompt", "n"] + [f"{m}_{p}" for m in metrics for p in ("mean", "se")]
  lines = [",".join(cols)]
  for row in rows:
    n = max((s.n for s in row.stats.values()), default=0)
    values = []
    for m in metrics:
      s = row.stats.get(m)
      values += ["" if s is None else repr(s.mean), "" if s is None or math.isnan(s.se) else repr(s.se)]
    cells = [row.arm, row.eval_prompt, str(n)] + values
    lines.append(",".join('"' + c.replace('"', '""') + '"' if "," in c or '"' in c else c for c in cells))
  return "\n".join(lines) + "\n"


def pearson(xs: list[float], ys: list[float]) -> float:
  n = len(xs)
  if n < 2:
    return math.nan
  mx, my = sum(xs) / n, sum(ys) / n
  sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
  sxx = sum((x - mx) ** 2 for x in xs)
  syy = sum((y - my) ** 2 for y in ys)
  return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def elicitation_points(sweep_dir: str, rows: list[Row], axes) -> list[tuple[str, float, float]]:
  """(candidate, elicitation score on the initial model, effect after training with it) per candidate."""
  path = SweepLayout(sweep_dir).elicitation
  if not storage.exists(path):
    return []
  elicitation = _load_json(path)
  neutral_eval = {row.arm: row for row in rows if row.eval_prompt == "Neutral"}
  points = []
  for candidate in elicitation.get("candidates", []):
    row = neutral_eval.get(candidate["name"])
    if row is None:
      continue
    means = {metric: stat.mean for metric, stat in row.stats.items()}
    try:
      points.append((candidate["name"], float(candidate["score"]), float(axes.effect(means))))
    except KeyError:
      continue
  return points
