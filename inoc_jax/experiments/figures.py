"""Paper-style PNG figures: capability vs undesired behaviour per arm, and elicitation vs effect.

Arms often land on the same point (two arms at 1.0 / 1.0). Such points are
drawn side by side, shifted a few screen points from their true place, and the
figure says so in a footnote; their error bars and the tables keep the true
values.
"""

from __future__ import annotations

import io
import math

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import transforms  # pylint: disable=g-import-not-at-top,wrong-import-position

from inoc_jax.experiments.aggregate import Row, pearson  # pylint: disable=wrong-import-position
from inoc_jax.experiments.axes import SettingAxes  # pylint: disable=wrong-import-position
from inoc_jax.runtime import storage  # pylint: disable=wrong-import-position


SHIFT_POINTS = 7.0    # screen distance between overlapping markers
OVERLAP = 0.02        # points closer than this fraction of both axis ranges count as overlapping


def _save(fig, path: str, **kwargs) -> None:
  """PNG at `path`, a local file or a gs:// object."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=120, **kwargs)
  storage.write_bytes(path, buffer.getvalue())


def _err(se: float) -> float:
  return 0.0 if math.isnan(se) else se


def overlap_slots(coords: Sequence[tuple[float, float]], tolerance: float = OVERLAP) -> list[tuple[int, int]]:
  """(slot, group size) per point: points within `tolerance` of the data range on both axes share a group.

  A point alone gets (0, 1); a group of k gets slots 0..k-1 in input order.
  """
  xs, ys = [c[0] for c in coords], [c[1] for c in coords]
  span_x = max(max(xs) - min(xs), 1.0) if xs else 1.0
  span_y = max(max(ys) - min(ys), 1.0) if ys else 1.0
  group_of: list[int] = []
  groups: list[list[int]] = []
  for i, (x, y) in enumerate(coords):
    for g, members in enumerate(groups):
      x0, y0 = coords[members[0]]
      if abs(x - x0) <= tolerance * span_x and abs(y - y0) <= tolerance * span_y:
        members.append(i)
        group_of.append(g)
        break
    else:
      groups.append([i])
      group_of.append(len(groups) - 1)
  return [(groups[g].index(i), len(groups[g])) for i, g in enumerate(group_of)]


def _shifted(ax, slot: int, size: int, vertical: bool = False):
  """A transform drawing data coordinates `slot`'s share of a side-by-side spread away from their place."""
  offset = (slot - (size - 1) / 2) * SHIFT_POINTS / 72.0
  dx, dy = (0.0, -offset) if vertical else (offset, 0.0)
  return ax.transData + transforms.ScaledTranslation(dx, dy, ax.figure.dpi_scale_trans)


def _footnote(fig, shifted: int) -> None:
  if shifted:
    fig.text(0.01, 0.005, f"{shifted} overlapping points drawn side by side ({SHIFT_POINTS:.0f} pt apart); their "
             "values are equal within 2% of the axis range", fontsize=6, color="dimgray", ha="left", va="bottom")


def capability_vs_behaviour(rows: list[Row], axes: SettingAxes, path: str, title: str) -> None:
  """One point per `Train / Eval` row with 1-s.e. error bars on both axes."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  points = [(row, row.stats.get(axes.capability), row.stats.get(axes.behaviour)) for row in rows]
  points = [(row, x, y) for row, x, y in points if x is not None and y is not None]
  slots = overlap_slots([(x.mean, y.mean) for _, x, y in points])
  for (row, x, y), (slot, size) in zip(points, slots):
    label = row.name + (" (shifted)" if size > 1 else "")
    ax.errorbar(x.mean, y.mean, xerr=_err(x.se), yerr=_err(y.se), fmt="o", capsize=3, label=label,
                transform=_shifted(ax, slot, size))
  _footnote(fig, sum(1 for _, size in slots if size > 1))
  ax.set_xlabel(axes.capability_label + " →")
  direction = "lower" if axes.behaviour_lower_is_better else "higher"
  ax.set_ylabel(f"{axes.behaviour_label} ({direction} is better)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="Train / Eval prompt",
            title_fontsize=7)
  fig.tight_layout()
  _save(fig, path, bbox_inches="tight")
  plt.close(fig)


def elicitation_vs_effect(points: list[tuple[str, float, float]], axes: SettingAxes, path: str,
                          title: str) -> float:
  """Scatter of (name, elicitation, effect) with the least-squares line; returns Pearson r.

  Overlapping points are spread sideways and their labels stacked, so each stays readable.
  """
  xs, ys = [p[1] for p in points], [p[2] for p in points]
  r = pearson(xs, ys)
  fig, ax = plt.subplots(figsize=(6, 4.5))
  slots = overlap_slots(list(zip(xs, ys)))
  for (name, x, y), (slot, size) in zip(points, slots):
    ax.scatter([x], [y], color="C0", transform=_shifted(ax, slot, size))
    ax.annotate(name + (" (shifted)" if size > 1 else ""), (x, y), textcoords="offset points",
                xytext=(6, 3 - 9 * slot), fontsize=7)
  _footnote(fig, sum(1 for _, size in slots if size > 1))
  if len(points) >= 2 and not math.isnan(r):
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    lo, hi = min(xs), max(xs)
    ax.plot([lo, hi], [my + slope * (lo - mx), my + slope * (hi - mx)], "--", color="gray")
  ax.set_xlabel(f"Elicitation: {axes.elicitation_metric} of the initial model with the instruction")
  ax.set_ylabel(axes.effect_label)
  correlation = "n/a" if math.isnan(r) else f"{r:.2f}"
  ax.set_title(f"{title} (Pearson r = {correlation}, n = {len(points)} instructions)", fontsize=9)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)
  return r
