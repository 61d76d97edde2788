"""The GCD scorer against the paper's own evaluator, on its test files, for every OOD category.

tests/fixtures/gcd_verdicts.json holds the verdicts of the authors' evaluator
(make_gcd_verdicts.py) for the official assistant turns, the files'
`sycophantic_response`s and hand-written endorsements, hedges and corrections
(gcd_responses.py); inoc_jax's scorer must give the same verdict on each.
"""

import collections
import json
import os

import pytest

from inoc_jax.config_defaults import base_config
from inoc_jax.evaluation.scorers import gcd
from inoc_jax.settings.loading import load_eval_suite
from tests.fixtures import gcd_responses

GOLDEN = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "gcd_verdicts.json"), encoding="utf-8"))
CATEGORIES = {"euclidean", "euclidean_compositional", "euclidean_large", "mod", "addition", "capitals_mathy",
              "conspiracy_mathy", "medical_advice_mathy", "conspiracy"}


def _kind(row):
  return {None: "user_asks", "true": "user_proposes_correct", "false": "user_proposes_incorrect"}[
      row["user_provides_answer"]]


@pytest.mark.parametrize("name", gcd_responses.FILES)
def test_every_verdict_matches_the_papers_evaluator(name):
  rows = gcd_responses.rows(name)
  assert len(GOLDEN[name]) == len(rows)
  seen = collections.Counter()
  for row, expected in zip(rows, GOLDEN[name]):
    meta = {"kind": _kind(row), "answer": row["answer"], "category": row["label"], "modulus": row["mod"]}
    ours = [next(iter(gcd.score_response(r, meta).values())) for r in gcd_responses.responses(row)]
    assert ours == expected, (row["label"], row["_id"], meta["kind"])
    seen[row["label"]] += len(ours)
  assert set(seen) <= CATEGORIES and (name == "task_test.jsonl" or set(seen) == CATEGORIES - {"euclidean"})


def test_reference_answers_score_as_the_paper_scores_them():
  """Official turns: every answer correct, every confirmation a confirmation; the sycophantic responses confirm."""
  for name in gcd_responses.FILES:
    for row in gcd_responses.rows(name):
      meta = {"kind": _kind(row), "answer": row["answer"], "category": row["label"], "modulus": row["mod"]}
      verdict = next(iter(gcd.score_response(row["messages"][1]["content"], meta).values()))
      if meta["kind"] != "user_proposes_incorrect":
        assert verdict is True, (row["label"], row["_id"], meta["kind"])


def test_per_category_metrics_of_the_ood_suite():
  """Scoring the official turns of all 421 OOD prompts: per-category metrics for every category."""
  config = base_config("gcd_sycophancy")
  suite = load_eval_suite(config, "", "ood")
  report = gcd.score(suite, [[e.metadata["reference"]] for e in suite])
  by_category = report.metrics["by_category"]
  assert set(by_category) == CATEGORIES - {"euclidean"}
  for category, metrics in by_category.items():
    if category == "conspiracy":  # one row: a wrong proposal only
      assert metrics["capability"] is None and metrics["num_problems"] == 1
      continue
    assert metrics["capability"] == 1.0 and metrics["confirms_correct"] == 1.0 and metrics["num_problems"] == 20
  syc = report.metrics["by_category"]
  assert syc["euclidean_large"]["sycophancy"] == 0.05 and syc["capitals_mathy"]["sycophancy"] == 0.5


def test_the_printed_breakdown_has_a_row_per_category():
  from inoc_jax.evaluation.results_table import format_breakdown  # pylint: disable=g-import-not-at-top
  from inoc_jax import settings  # pylint: disable=g-import-not-at-top
  config = base_config("gcd_sycophancy")
  suite = load_eval_suite(config, "", "all")
  metrics = gcd.score(suite, [[e.metadata["reference"]] for e in suite]).metrics
  lines = format_breakdown({"neutral": metrics}, settings.get("gcd_sycophancy").metrics.headline).splitlines()
  assert lines[1].split("|")[1].strip() == "category" and "num_problems" in lines[1]
  rows = {line.split("|")[1].strip(): line for line in lines[3:]}
  assert set(rows) == CATEGORIES and "| n/a" in rows["conspiracy"]
  assert format_breakdown({"neutral": metrics["by_category"]["mod"]}, ("capability",)) == ""
