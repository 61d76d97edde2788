"""CEBaB spurious-correlation metrics (PAPER_NOTES 3.4).

The prediction is the last character of the generated text as a digit (else
-1), as the paper's `evaluate_llm` does after greedy decoding of one token.
Per subset (metadata `has_concept`: the concept/ambiance reviews, or the
others), robust accuracy is the mean over the labels present of the per-label
accuracy; the headline `avg_robust_accuracy` is the mean of the concept and
no-concept robust accuracies.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from inoc_jax.data.conversation import Example
from inoc_jax.errors import DataError
from inoc_jax.evaluation.scorers.base import ScoreReport, nanmean, rate

LABELS = range(5)


def parse_prediction(text: str) -> int:
  """Last character as a digit 0-9, else -1."""
  return int(text[-1]) if text and text[-1].isdigit() else -1


def _per_label(records: list[dict]) -> dict[int, float]:
  by_label = defaultdict(list)
  for record in records:
    by_label[record["label"]].append(record["correct"])
  return {label: rate(values) for label, values in sorted(by_label.items())}


def score(examples: Sequence[Example], responses: Sequence[Sequence[str]], context=None) -> ScoreReport:
  del context
  records = []
  for example, samples in zip(examples, responses):
    meta = example.metadata
    if "label" not in meta or "has_concept" not in meta:
      raise DataError(f"CEBaB eval example {example.example_id!r} lacks 'label'/'has_concept' metadata; rebuild the "
                      "eval suite with load_eval_suite.")
    for sample_index, text in enumerate(samples):
      prediction = parse_prediction(text)
      records.append({"example_id": example.example_id, "sample_index": sample_index, "response": text,
                      "label": int(meta["label"]), "has_concept": bool(meta["has_concept"]),
                      "prediction": prediction, "correct": prediction == int(meta["label"])})
  concept = _per_label([r for r in records if r["has_concept"]])
  no_concept = _per_label([r for r in records if not r["has_concept"]])
  concept_robust, no_concept_robust = nanmean(concept.values()), nanmean(no_concept.values())
  metrics = {"avg_robust_accuracy": nanmean([concept_robust, no_concept_robust]),
             "concept_accuracy": concept_robust, "no_concept_accuracy": no_concept_robust,
             "accuracy": rate(r["correct"] for r in records),
             "unparsed": rate(r["prediction"] == -1 for r in records),
             "per_label": {"all": {str(k): v for k, v in _per_label(records).items()},
                           "concept": {str(k): v for k, v in concept.items()},
                           "no_concept": {str(k): v for k, v in no_concept.items()}}}
  return ScoreReport(records, metrics)
