"""Plain-text table of evaluation metrics: one row per eval prompt, headline metrics first."""

from __future__ import annotations

from typing import Any, Sequence

from inoc_jax.evaluation.scorers.base import flatten


def format_cell(value: Any) -> str:
  if value is None:
    return "n/a"
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, float):
    return f"{value:.3f}"
  return str(value)


def format_table(setting: str, metrics_by_prompt: dict[str, dict], headline: Sequence[str], *, title: str = "",
                 max_columns: int = 8, row_label: str = "eval prompt") -> str:
  """Rows = eval prompts; columns = the headline metrics, then other scalar metrics up to max_columns."""
  flat = {prompt: flatten(m) for prompt, m in metrics_by_prompt.items()}
  columns = [c for c in headline if any(c in row for row in flat.values())]
  for row in flat.values():
    for key, value in row.items():
      if len(columns) >= max_columns:
        break
      if key not in columns and "/" not in key and isinstance(value, (int, float)) and not isinstance(value, bool):
        columns.append(key)
  header = [row_label] + columns
  rows = [[prompt[:40]] + [format_cell(flat[prompt].get(c)) for c in columns] for prompt in flat]
  widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
  line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
  out = [title or setting, line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
  out += [line(r) for r in rows]
  return "\n".join(out)


def format_breakdown(metrics_by_prompt: dict[str, dict], headline: Sequence[str], *, key: str = "by_category") -> str:
  """Per-group rows (e.g. the GCD OOD categories) under each eval prompt whose metrics carry `key`.

  Printed only where a prompt's metrics split into more than one group; '' otherwise.
  """
  blocks = []
  for prompt, metrics in metrics_by_prompt.items():
    groups = metrics.get(key) or {}
    if len(groups) < 2:
      continue
    columns = [c for c in headline if any(c in g for g in groups.values())]
    columns += ["num_problems"] if any("num_problems" in g for g in groups.values()) else []
    group = key.removeprefix("by_")
    blocks.append(format_table("", dict(groups), columns, max_columns=len(columns), row_label=group,
                               title=f"by {group}, eval prompt {prompt[:40]!r}"))
  return "\n".join(blocks)
