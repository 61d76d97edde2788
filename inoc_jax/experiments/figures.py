"""Paper-style PNG figures: capability vs undesired behaviour per arm, and elicitation vs effect."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from inoc_jax.experiments.aggregate import Row, pearson  # pylint: disable=wrong-import-position
from inoc_jax.experiments.axes import SettingAxes  # pylint: disable=wrong-import-position


def _err(se: float) -> float:
  return 0.0 if math.isnan(se) else se


def capability_vs_behaviour(rows: list[Row], axes: SettingAxes, path: str, title: str) -> None:
  """One point per `Train / Eval` row with 1-s.e. error bars on both axes."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  for row in rows:
    x, y = row.stats.get(axes.capability), row.stats.get(axes.behaviour)
    if x is None or y is None:
      continue
    ax.errorbar(x.mean, y.mean, xerr=_err(x.se), yerr=_err(y.se), fmt="o", capsize=3, label=row.name)
  ax.set_xlabel(axes.capability_label + " →")
  direction = "lower" if axes.behaviour_lower_is_better else "higher"
  ax.set_ylabel(f"{axes.behaviour_label} ({direction} is better)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="Train / Eval prompt",
            title_fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def elicitation_vs_effect(points: list[tuple[str, float, float]], axes: SettingAxes, path: str,
                          title: str) -> float:
  """Scatter of (name, elicitation, effect) with the least-squares line; returns Pearson r."""
  xs, ys = [p[1] for p in points], [p[2] for p in points]
  r = pearson(xs, ys)
  fig, ax = plt.subplots(figsize=(6, 4.5))
  ax.scatter(xs, ys)
  for name, x, y in points:
    ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
  if len(points) >= 2 and not math.isnan(r):
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    lo, hi = min(xs), max(xs)
    ax.plot([lo, hi], [my + slope * (lo - mx), my + slope * (hi - mx)], "--", color="gray")
  ax.set_xlabel(f"Elicitation: {axes.elicitation_metric} of the initial model with the instruction")
  ax.set_ylabel(axes.effect_label)
  ax.set_title(f"{title} (Pearson r = {r:.2f})")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return r
