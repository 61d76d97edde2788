"""Initial model vs trained model, side by side: the table a training run ends with.

    print(format_comparison("gcd_sycophancy", initial, final, train_prompts=["Behave as if ..."]))

`initial` and `final` are `evaluate_params` results ({eval prompt: metrics}).
Rows are eval prompts; for each compared metric there is an `initial` and a
`final` column. Below the table one sentence says how the run was trained
(which train prompt, i.e. which arm) and how to read the numbers.
"""

from __future__ import annotations

from typing import Sequence

from inoc_jax import settings
from inoc_jax.evaluation.results_table import format_cell
from inoc_jax.evaluation.scorers.base import flatten


def _quote(text: str, limit: int = 80) -> str:
  text = " ".join(text.split())
  return repr(text if len(text) <= limit else text[:limit - 3] + "...")


def reading_note(setting: str, train_prompts: Sequence[str]) -> str:
  """One sentence: which arm this run is (from its train prompts) and how to read initial vs final."""
  metrics = settings.get(setting).metrics
  behaviour, direction = metrics.effect, metrics.effect_direction
  prompts = [p for p in train_prompts if p]
  if not prompts:
    return (f"Neutral arm: trained without any instruction, evaluated as shown; the change in {behaviour} from "
            "initial to final is what the training data teaches, and an inoculated (IP) run is compared "
            "against this final column.")
  trained = (f"trained with the train prompt {_quote(prompts[0])}" if len(prompts) == 1
             else f"trained with {len(prompts)} train prompts (one sampled per example)")
  return (f"IP arm: {trained} and evaluated without it (eval prompts as shown); {direction} {behaviour} at the "
          "neutral eval prompt than a Neutral run's final value is the inoculation effect, while capability "
          "should still improve over the initial model.")


def format_comparison(setting: str, initial: dict[str, dict], final: dict[str, dict],
                      train_prompts: Sequence[str] = ("",), *, title: str = "") -> str:
  """Rows = eval prompts (those of `final`); columns = initial and final value of each compared metric."""
  flat_initial = {prompt: flatten(m) for prompt, m in (initial or {}).items()}
  flat_final = {prompt: flatten(m) for prompt, m in final.items()}
  metrics = [m for m in settings.get(setting).metrics.compared
             if any(m in row for row in list(flat_final.values()) + list(flat_initial.values()))]
  header = ["eval prompt"] + [f"{m} {when}" for m in metrics for when in ("initial", "final")]
  rows = []
  for prompt, values in flat_final.items():
    before = flat_initial.get(prompt, {})
    rows.append([prompt[:40]] + [format_cell(row.get(m)) for m in metrics for row in (before, values)])
  widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
  line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
  out = [title or f"{setting}: initial model vs trained model", line(header),
         "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
  out += [line(r) for r in rows]
  out.append(reading_note(setting, train_prompts))
  return "\n".join(out)
