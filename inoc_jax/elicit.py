"""Rank candidate inoculation prompts by how strongly they elicit the behaviour before training.

  python -m inoc_jax.elicit --config=configs/X.py [--candidates=NAME,NAME,...|@FILE] [--sweep_dir=DIR]

Each candidate is inserted into the setting's eval prompts (its usual placement)
and the **initial** model is scored with the setting's elicitation metric
(PAPER_NOTES 2.6, 3.6, 4.6, 5.6): reward-hack rate (MBPP), sycophancy (GCD and
the organism), harassment (CMV), and for CEBaB the avg robust accuracy on the
eval set whose correlation matches training minus that on the reversed one.
The paper's heuristic: a candidate that elicits more tends to inoculate better.

The initial model is `model.checkpoint`, or with --sweep_dir a sweep's stage-1
bases (`base/seed<k>/hf`, scores averaged over seeds). Writes elicitation.json
(in the sweep dir, else --out) and prints the ranking; when the sweep has
finished runs trained with the candidates, it also prints the Pearson r
between elicitation and the inoculation effect (the paper's Figs 6-9 axes).
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from absl import app, flags

from inoc_jax import cli, settings
from inoc_jax.errors import ConfigError
from inoc_jax.experiments import aggregate
from inoc_jax.experiments.axes import axes_for
from inoc_jax.runtime import storage
from inoc_jax.runtime.layout import SweepLayout

log = logging.getLogger(__name__)


def default_candidates(config) -> list[str]:
  if config.sweep.elicitation_candidates:
    return list(config.sweep.elicitation_candidates)
  kinds = ("neutral", "inoculation", "unrelated_control")
  return [p.name for p in settings.get(config.setting).prompts.entries if p.kind in kinds]


def parse_candidates(value: str | None, config) -> list[str]:
  from inoc_jax.data import prompts  # pylint: disable=g-import-not-at-top
  if not value:
    return default_candidates(config)
  if value.startswith("@"):
    return prompts.read_prompt_file(value[1:])
  return [c.strip() for c in value.split(",") if c.strip()]


def initial_models(config, sweep_dir: str | None) -> list[tuple[str, int]]:
  """(checkpoint, seed) of each initial model: a sweep's per-seed bases, else (model.checkpoint, seed)."""
  if sweep_dir:
    bases = SweepLayout(sweep_dir).base_exports()
    if bases:
      return [(folder, seed) for seed, folder in bases]
  if not config.model.checkpoint:
    raise ConfigError("Elicitation needs an initial model: set model.checkpoint, or pass --sweep_dir of a sweep "
                      "whose base models are trained.")
  return [(config.model.checkpoint, config.seed)]


def scores_for_model(config, source: str, candidates: Sequence[str], out_dir: str) -> dict[str, dict]:
  """{candidate: {"score": elicitation, "metrics": {...}}} for one initial model."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from inoc_jax.evaluation.harness import evaluate_params  # pylint: disable=g-import-not-at-top
  from inoc_jax.weights.pretrained import open_pretrained  # pylint: disable=g-import-not-at-top
  graphdef, state = nnx.split(open_pretrained(source).load_model())
  elicitation = settings.get(config.setting).elicitation
  splits = elicitation.splits or (config.eval.split,)
  by_split = {}
  for split in splits:
    config.eval.split = split
    by_split[split] = evaluate_params(config, graphdef, state, workdir=storage.join(out_dir, split),
                                      prompts=list(candidates), checkpoint_id=source, step=0, print_table=False)
  out = {}
  for candidate in candidates:
    label = candidate if candidate else "neutral"
    if elicitation.combine is not None:
      score, metrics = elicitation.combine({s: by_split[s][label] for s in splits})
    else:
      metrics = {k: v for k, v in by_split[splits[0]][label].items() if isinstance(v, (int, float))}
      score = metrics.get(elicitation.metric)
    out[candidate] = {"score": score, "metrics": metrics}
  return out


def rank(config, candidates: Sequence[str], per_model: Sequence[dict[str, dict]], models: Sequence[str]) -> dict:
  """Mean (and s.e. over initial models) per candidate, highest elicitation first."""
  rows = []
  for candidate in candidates:
    values = [m[candidate]["score"] for m in per_model if m[candidate]["score"] is not None]
    stat = aggregate.mean_and_se(values)
    rows.append({"name": aggregate.eval_prompt_label(config.setting, candidate), "prompt": candidate,
                 "score": stat.mean, "se": stat.se, "n": stat.n,
                 "per_model": [m[candidate]["score"] for m in per_model]})
  rows.sort(key=lambda r: (-r["score"] if r["score"] == r["score"] else float("inf")))
  return {"setting": config.setting, "metric": settings.get(config.setting).elicitation.metric,
          "initial_models": list(models), "candidates": rows}


def table(result: dict) -> str:
  lines = [f"Elicitation on the initial model ({result['metric']}, higher = elicits more):", "",
           "| rank | candidate | score | s.e. | n |", "|---|---|---|---|---|"]
  for i, row in enumerate(result["candidates"], 1):
    se = "" if row["se"] != row["se"] else f"{row['se']:.3f}"
    lines.append(f"| {i} | {row['name']} | {row['score']:.3f} | {se} | {row['n']} |")
  return "\n".join(lines)


def result_path(sweep_dir: str | None, out_dir: str) -> str:
  """Where elicitation.json goes: beside the sweep's results (the report reads it there), else in out_dir."""
  return SweepLayout(sweep_dir).elicitation if sweep_dir else storage.join(out_dir, "elicitation.json")


def elicit(config, candidates: Sequence[str], sweep_dir: str | None, out_dir: str) -> dict:
  """Scores and ranks the candidates (evaluation outputs under out_dir) and writes `result_path`."""
  models = initial_models(config, sweep_dir)
  per_model = []
  for source, seed in models:
    log.info("elicitation: %d candidates on %s (seed %d)", len(candidates), source, seed)
    config.seed = seed  # settings whose eval data depends on the seed (the organism's world) follow the model
    per_model.append(scores_for_model(config, source, candidates, storage.join(out_dir, "runs", f"seed{seed}")))
  result = rank(config, candidates, per_model, [source for source, _ in models])
  path = result_path(sweep_dir, out_dir)
  storage.write_text(path, storage.dumps_json(result, indent=2))
  return result


def correlation_with_sweep(sweep_dir: str, setting: str) -> tuple[float, int] | None:
  """(Pearson r, number of candidates) between elicitation and the sweep's inoculation effect."""
  try:
    rows = aggregate.aggregate(aggregate.collect(sweep_dir))
  except Exception:  # pylint: disable=broad-except
    return None
  points = aggregate.elicitation_points(sweep_dir, rows, axes_for(setting))
  if len(points) < 2:
    return None
  return aggregate.pearson([p[1] for p in points], [p[2] for p in points]), len(points)


def main(argv):
  del argv
  config = flags.FLAGS.config
  config.eval.at_end = False
  candidates = parse_candidates(flags.FLAGS.candidates, config)
  if len(candidates) < 2:
    raise ConfigError("Give at least two candidates to rank (--candidates=a,b,...).")
  sweep_dir = flags.FLAGS.sweep_dir
  out_dir = storage.join(sweep_dir, "elicitation") if sweep_dir else flags.FLAGS.out or "elicitation"
  result = elicit(config, candidates, sweep_dir, out_dir)
  print(table(result))
  if sweep_dir:
    found = correlation_with_sweep(sweep_dir, config.setting)
    if found:
      print(f"\nElicitation vs inoculation effect ({axes_for(config.setting).effect_label}): "
            f"Pearson r = {found[0]:.3f} over {found[1]} candidates")
  print(f"\nwrote {result_path(sweep_dir, out_dir)}", file=sys.stderr)


def define_flags() -> None:
  """The CLI's flags (defined only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_string("candidates", None, "Comma-separated registry names / texts, or @FILE (one per line). "
                      "Default: sweep.elicitation_candidates, else the setting's registry.")
  flags.DEFINE_string("sweep_dir", None, "Use this sweep's stage-1 bases and write elicitation.json there.")
  flags.DEFINE_string("out", None, "Where elicitation.json goes without --sweep_dir (default: ./elicitation).")


if __name__ == "__main__":
  define_flags()
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file("config", None, "Experiment config file, optionally ':preset'.", lock_config=False)
  flags.mark_flags_as_required(["config"])
  app.run(cli.friendly(main, distributed=False), flags_parser=cli.parse_flags)
