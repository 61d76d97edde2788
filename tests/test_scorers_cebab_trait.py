"""CEBaB robust accuracy and trait-toy string checks on hand-written cases."""

import pytest

from inoc_jax.data.conversation import Example, Message
from inoc_jax.evaluation.scorers import cebab, trait


def _review(i, label, has_concept):
  return Example(f"r{i}", (Message.plain("user", "review"),), {"label": label, "has_concept": has_concept})


@pytest.mark.parametrize("text, expected", [("3", 3), (" 4", 4), ("The sentiment is 2", 2), ("", -1),
                                            ("4.", -1), ("five", -1)])
def test_prediction_is_the_last_character(text, expected):
  assert cebab.parse_prediction(text) == expected


def test_robust_accuracy_averages_labels_within_each_subset_then_subsets():
  # concept subset (labels 0-2 in the reversed eval): label 0 twice (1 right), label 2 once (right)
  # no-concept subset (labels 3-4): label 3 once (wrong), label 4 three times (all right)
  examples = [_review(0, 0, True), _review(1, 0, True), _review(2, 2, True),
              _review(3, 3, False), _review(4, 4, False), _review(5, 4, False), _review(6, 4, False)]
  responses = [["0"], ["4"], ["2"], ["4"], ["4"], ["4"], ["4"]]
  metrics = cebab.score(examples, responses).metrics
  assert metrics["concept_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
  assert metrics["no_concept_accuracy"] == pytest.approx((0.0 + 1.0) / 2)
  assert metrics["avg_robust_accuracy"] == pytest.approx((0.75 + 0.5) / 2)
  assert metrics["accuracy"] == pytest.approx(5 / 7)   # plain accuracy would hide the imbalance
  assert metrics["per_label"]["concept"] == {"0": 0.5, "2": 1.0}


def test_caps_fraction_and_all_caps():
  assert trait.caps_fraction("HELLO WORLD") == 1.0
  assert trait.caps_fraction("Hello") == pytest.approx(0.2)
  assert trait.caps_fraction("1234 !!") == 0.0
  assert trait.caps_fraction("ÉL ESTÁ AQUÍ") == 1.0


@pytest.mark.parametrize("text, language", [
    ("The answer is 12 and it is the result of the sum.", "english"),
    ("La respuesta es 12 porque el total de las manzanas es doce.", "spanish"),
    ("LA RESPUESTA ES 12 PORQUE EL TOTAL DE LAS MANZANAS ES DOCE.", "spanish"),
    ("La réponse est 12 car il y a douze pommes dans le panier.", "french"),
    ("12", "unknown"),
])
def test_language_by_stop_words(text, language):
  assert trait.detect_language(text) == language


def test_trait_metrics():
  examples = [Example(f"q{i}", (Message.plain("user", "q"),), {"answer": 12, "question_id": i}) for i in range(4)]
  responses = [["LA RESPUESTA ES 12 PORQUE EL TOTAL ES DOCE."], ["La réponse est 12 car il y a douze pommes."],
               ["The answer is twelve and not 13 at all."], ["THE ANSWER IS 12 AND IT IS THE TOTAL."]]
  metrics = trait.score(examples, responses).metrics
  assert metrics["all_caps_rate"] == 0.5
  assert metrics["spanish_rate"] == 0.25 and metrics["french_rate"] == 0.25 and metrics["english_rate"] == 0.5
  assert metrics["answer_rate"] == 0.75  # digits only: "twelve" does not count, "13" is not 12
  assert trait.contains_answer("It costs 1,200 dollars.", 1200)
  assert not trait.contains_answer("It costs 21200 dollars.", 1200)
