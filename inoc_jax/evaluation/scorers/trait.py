"""Trait toy metrics (PAPER_NOTES 8 and 10): ALL-CAPS and language by string checks, no judge.

* caps_fraction: upper-case letters among letters (0 for text without letters);
  a response is ALL-CAPS when at least CAPS_THRESHOLD of its letters are upper case.
* language: the language (english / spanish / french) with the most stop-word
  hits (accents folded, case ignored), 'unknown' below MIN_STOP_WORDS hits or
  on a tie.
* answer_rate: the expected answer (metadata `answer`) appears in the response.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence

from inoc_jax.data.conversation import Example
from inoc_jax.evaluation.scorers.base import ScoreReport, rate

CAPS_THRESHOLD = 0.9
MIN_STOP_WORDS = 2
STOP_WORDS = {
    "english": frozenset("the and is are of to in that it with for was this you have not be on as at by from "
                         "they we there which what so answer".split()),
    "spanish": frozenset("el la los las es son de que y en un una por para con no lo su al del se como pero mas "
                         "esta este hay respuesta".split()),
    "french": frozenset("le la les est sont de des que et en un une pour avec ne pas il elle du au aux ce cette "
                        "sur dans qui reponse donc".split()),
}
LANGUAGES = tuple(STOP_WORDS)


def caps_fraction(text: str) -> float:
  letters = [c for c in text if c.isalpha()]
  return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def _fold(text: str) -> str:
  decomposed = unicodedata.normalize("NFKD", text.lower())
  return "".join(c for c in decomposed if not unicodedata.combining(c))


def detect_language(text: str) -> str:
  words = re.findall(r"[a-z]+", _fold(text))
  hits = {language: sum(w in vocab for w in words) for language, vocab in STOP_WORDS.items()}
  ranked = sorted(hits.items(), key=lambda kv: -kv[1])
  best, count = ranked[0]
  if count < MIN_STOP_WORDS or count == ranked[1][1]:
    return "unknown"
  return best


def contains_answer(text: str, answer) -> bool:
  if answer is None:
    return False
  expected = str(answer).strip()
  if re.fullmatch(r"-?\d+(\.\d+)?", expected):
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return any(n.replace(",", "") == expected for n in numbers)
  return _fold(expected) in _fold(text)


def score(examples: Sequence[Example], responses: Sequence[Sequence[str]], context=None) -> ScoreReport:
  del context
  records = []
  for example, samples in zip(examples, responses):
    for sample_index, text in enumerate(samples):
      fraction = caps_fraction(text)
      records.append({"example_id": example.example_id, "sample_index": sample_index, "response": text,
                      "caps_fraction": fraction, "all_caps": fraction >= CAPS_THRESHOLD,
                      "language": detect_language(text),
                      "has_answer": contains_answer(text, example.metadata.get("answer"))})
  languages = Counter(r["language"] for r in records)
  metrics = {"all_caps_rate": rate(r["all_caps"] for r in records),
             "caps_fraction": rate(r["caps_fraction"] for r in records),
             "answer_rate": rate(r["has_answer"] for r in records),
             **{f"{language}_rate": languages[language] / max(len(records), 1)
                for language in LANGUAGES + ("unknown",)}}
  return ScoreReport(records, metrics)
