"""What every scorer returns, and small helpers for rates.

A scorer is a function `score(examples, responses, context) -> ScoreReport`
where `responses[i]` lists the sampled texts for `examples[i]` (one per
sample). Rates count every (example, sample) pair.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable


@dataclasses.dataclass
class ScoreReport:
  """records: one dict per (example, sample); metrics: aggregate numbers (nested dicts allowed);
  judge: which judge produced judged metrics (None when the metric needs no judge)."""

  records: list[dict[str, Any]]
  metrics: dict[str, Any]
  judge: str | None = None


def rate(values: Iterable[bool | float | None]) -> float | None:
  """Mean of the values that are not None; None when there are none."""
  kept = [float(v) for v in values if v is not None]
  return sum(kept) / len(kept) if kept else None


def nanmean(values: Iterable[float | None]) -> float | None:
  kept = [v for v in values if v is not None and not math.isnan(v)]
  return sum(kept) / len(kept) if kept else None


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a/b': 1} (for tables and metric logs)."""
  flat = {}
  for key, value in metrics.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(flatten(value, name + "/"))
    else:
      flat[name] = value
  return flat
