"""Aggregate a sweep: `python -m inoc_jax.report SWEEP_DIR [--out=DIR]`.

Writes `report.md`, `report.csv` (mean ± standard error over seeds, rows named
`Train prompt / Eval prompt`, the initial model as its own row), a
capability-vs-behaviour PNG and, when `elicitation.json` exists, the
elicitation-vs-effect PNG with its fitted line and Pearson r.
"""

from __future__ import annotations

import json

from absl import app, flags

from inoc_jax import cli
from inoc_jax.errors import DataError
from inoc_jax.experiments import aggregate, figures
from inoc_jax.experiments.axes import axes_for
from inoc_jax.runtime import storage
from inoc_jax.runtime.layout import SweepLayout

def write_report(sweep_dir: str, out_dir: str | None = None) -> dict:
  layout = SweepLayout(sweep_dir)
  out_dir = out_dir or layout.report_dir
  if not storage.exists(layout.sweep_json):
    raise DataError(f"{sweep_dir!r} has no sweep.json; pass a directory created by `python -m inoc_jax.sweep`.")
  sweep = json.loads(storage.read_text(layout.sweep_json))
  axes = axes_for(sweep["setting"])
  rows = aggregate.aggregate(aggregate.collect(sweep_dir), arm_order=[a["name"] for a in sweep.get("arms", [])])
  metrics = sorted({m for row in rows for m in row.stats})
  primary = [m for m in (axes.capability, axes.behaviour) if m in metrics]
  metrics = primary + [m for m in metrics if m not in primary]
  storage.makedirs(out_dir)
  markdown = aggregate.table_markdown(rows, metrics)
  report_md = f"# {sweep['setting']}: mean ± s.e. over seeds\n\n{markdown}\n"
  storage.write_text(storage.join(out_dir, "report.csv"), aggregate.table_csv(rows, metrics))
  outputs = {"markdown": markdown, "figures": []}
  scatter = storage.join(out_dir, "capability_vs_behaviour.png")
  figures.capability_vs_behaviour(rows, axes, scatter, sweep["setting"])
  outputs["figures"].append(scatter)
  points = aggregate.elicitation_points(sweep_dir, rows, axes)
  if len(points) >= 2:
    path = storage.join(out_dir, "elicitation_vs_effect.png")
    outputs["pearson_r"] = figures.elicitation_vs_effect(points, axes, path, sweep["setting"])
    outputs["pearson_n"] = len(points)
    outputs["figures"].append(path)
    report_md += (f"\nElicitation vs inoculation effect: Pearson r = {outputs['pearson_r']:.3f} over "
                  f"{len(points)} instructions.\n")
  storage.write_text(storage.join(out_dir, "report.md"), report_md)
  return outputs


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m inoc_jax.report SWEEP_DIR [--out=DIR]")
  outputs = write_report(argv[1], flags.FLAGS.out)
  print(outputs["markdown"])
  if "pearson_r" in outputs:
    print(f"elicitation vs effect: Pearson r = {outputs['pearson_r']:.3f} over {outputs['pearson_n']} instructions")
  print("figures: " + ", ".join(outputs["figures"]))


if __name__ == "__main__":
  # Defined here, not at import: inoc_jax.export also defines --out, and tests import both.
  flags.DEFINE_string("out", None, "Output directory (default: SWEEP_DIR/report).")
  app.run(cli.friendly(main, distributed=False), flags_parser=cli.parse_flags)
