"""Spurious correlation in sentiment classification on CEBaB (paper section 3).

Data: the CEBaB reviews with concept tags (`chatgpt_concepts_cebab_exp.jsonl`,
9,350 rows: label 0-4, text, comma-separated concepts), from `data.source_dir`
(tests: ../shared/data/cebab) or the paper's repository, sha256-checked.
Per seed (the paper re-draws the split with the run's seed): the train/test split
is scikit-learn's `train_test_split(test_size=2000, random_state=seed)` (one
`RandomState(seed).permutation`; test = its first 2,000). Concept membership
is by review text as in the official code.
  * train `very_biased`: concept reviews only with labels {3, 4}, others only
    with {0, 1, 2} (seed 42: 1,124 + 2,862 = 3,986);
  * eval 'eval' (`very_biased_reverse`): concept reviews with {0, 1, 2}, others
    with {3, 4}; 'eval_matched': the test split filtered like training;
    'eval_all': the whole test split;
  * `data.cebab.category_hint`: append " Review categories: food, ambiance." (or
    " Review categories: None.") to the review; `data.cebab.concept='food'`
    with the hint off is the food-concept variant (Fig 18).
User turn: "The range of sentiment scores are 0-4 inclusive. {instruction} Output
only the sentiment of this review as a number and nothing else.\\n\\nReview:
{review}"; answer: the digit. Eval metadata: label, has_concept.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from inoc_jax.data import prompts
from inoc_jax.data.conversation import Example, Message, Segment
from inoc_jax.data.roles import Role
from inoc_jax.data.settings import sources, tfds_base
from inoc_jax.data.settings.placement import place
from inoc_jax.errors import ConfigError, DataError

NAME = "cebab_spurious"
EVAL_SPLITS = ("eval", "eval_matched", "eval_all")
TEST_SIZE = 2000
CONCEPT_LABELS = {0, 1, 2, 3, 4}
TARGET_LABELS = {3, 4}  # the labels the concept is correlated with in training
METHODS = ("very_biased", "very_biased_reverse", "original")

SOURCE = sources.RemoteFile(
    "chatgpt_concepts_cebab_exp.jsonl",
    "https://raw.githubusercontent.com/safety-research/inoculation-prompting/main/spur_corr/data/"
    "chatgpt_concepts_cebab_exp.jsonl", "2df9320c0cc97cbf6e47e6caca8d8af290215e5df490e5f555da6ef50779e7d7")

RANGE_SENTENCE = "The range of sentiment scores are 0-4 inclusive."
INSTRUCTION_TAIL = " Output only the sentiment of this review as a number and nothing else.\n\nReview: {review}"


@dataclasses.dataclass
class CebabConfig(tfds.core.BuilderConfig):
  path: str = ""


class InocCebabSpurious(tfds_base.SettingBuilder):
  """CEBaB reviews with ChatGPT concept tags (Zhou et al. 2024), as used by Wichers et al. 2025 section 3."""

  VERSION = tfds.core.Version("1.0.0")
  FEATURES = {"index": np.int64, "label": np.int64, "text": tfds.features.Text(), "concepts": tfds.features.Text()}

  def split_records(self):
    rows = sources.read_jsonl(self.builder_config.path, ("label", "text", "concepts"))
    for number, row in enumerate(rows, start=1):
      if row["label"] not in CONCEPT_LABELS:
        raise DataError(f"{self.builder_config.path} line {number}: label {row['label']!r} is not 0-4; fix the row.")
    return {"reviews": [{"index": i, "label": int(r["label"]), "text": r["text"], "concepts": r["concepts"] or ""}
                    for i, r in enumerate(rows)]}


def concepts_of(raw: str) -> list[str]:
  return [c.strip() for c in raw.lower().split(",") if c.strip()]


def review_text(row: dict[str, Any], category_hint: bool) -> str:
  text = row["text"]
  if category_hint:
    tags = concepts_of(row["concepts"])
    text += f" Review categories: {', '.join(tags)}." if tags else " Review categories: None."
  return text


def split_indices(n: int, seed: int, test_size: int = TEST_SIZE) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) positions exactly as sklearn's train_test_split(test_size, random_state=seed)."""
  permutation = np.random.RandomState(seed).permutation(n)
  return permutation[test_size:], permutation[:test_size]


def filter_method(rows: list[dict], concept_texts: set[str], method: str, category_hint: bool) -> list[dict]:
  """Keeps rows per the bias method: concept rows and the others get complementary label sets."""
  if method not in METHODS:
    raise ConfigError(f"data.cebab.train_method {method!r} is unknown; choose one of {', '.join(METHODS)}.")
  if method == "original":
    return list(rows)
  other = CONCEPT_LABELS - TARGET_LABELS
  concept_allowed, rest_allowed = (TARGET_LABELS, other) if method == "very_biased" else (other, TARGET_LABELS)
  concept_rows = [r for r in rows if review_text(r, category_hint) in concept_texts]
  rest_rows = [r for r in rows if review_text(r, category_hint) not in concept_texts]
  return [r for r in concept_rows if r["label"] in concept_allowed] + [r for r in rest_rows if r["label"] in rest_allowed]


def _rows(config) -> list[dict[str, Any]]:
  folder = sources.source_folder(config, "cebab")
  path = sources.fetch(SOURCE, folder, sources.tfds_dir(config) + "/downloads/cebab",
                       config.data.get("verify_checksums", True))
  builder_config = CebabConfig(name=f"src-{sources.content_tag([path])}", path=path)
  return tfds_base.load_split(InocCebabSpurious, builder_config, sources.tfds_dir(config), "reviews")


def split_for(config) -> dict[str, Any]:
  """Rows of this run: train (biased), test, and which texts carry the concept."""
  options = config.data.cebab
  rows = _rows(config)
  concept_texts = {review_text(r, options.category_hint) for r in rows if options.concept in concepts_of(r["concepts"])}
  seed = config.seed if options.split_seed < 0 else options.split_seed
  train_idx, test_idx = split_indices(len(rows), seed)
  train = [rows[i] for i in train_idx]
  test = [rows[i] for i in test_idx]
  return {"train": filter_method(train, concept_texts, options.train_method, options.category_hint),
          "test": test, "concept_texts": concept_texts}


def user_message(review: str, instruction: str) -> Message:
  tail = INSTRUCTION_TAIL.format(review=review.replace("\n", " "))
  if not instruction:
    return Message.plain("user", RANGE_SENTENCE + tail)
  return Message("user", (Segment(RANGE_SENTENCE + " ", Role.USER), Segment(instruction, Role.INOCULATION),
                          Segment(tail, Role.USER)))


def _example(row, config, instruction, with_answer, prefix, concept_texts) -> Example:
  review = review_text(row, config.data.cebab.category_hint)

  def build(text):
    user = user_message(review, text)
    return (user, Message.plain("assistant", str(row["label"]))) if with_answer else (user,)

  return Example(f"{prefix}-{row['index']}", place(config.data.prompt_placement, instruction, build),
                 {"label": int(row["label"]), "has_concept": review in concept_texts, "index": int(row["index"])})


def build(config, pool: list[str]) -> tuple[list[Example], list[Example]]:
  data = split_for(config)
  limit, train_rows = config.data.num_train_examples, data["train"]
  if 0 < limit < len(train_rows):  # a seeded subset: the list is ordered concept-first
    keep = np.sort(np.random.RandomState(config.seed % 2**32).permutation(len(train_rows))[:limit])
    train_rows = [train_rows[i] for i in keep]
  train = [_example(r, config, prompts.choose(pool, config.seed, f"cebab-train-{r['index']}"), True, "cebab-train",
                    data["concept_texts"]) for r in train_rows]
  heldout = [_example(r, config, prompts.choose(pool, config.seed, f"cebab-heldout-{r['index']}"), True,
                      "cebab-heldout", data["concept_texts"]) for r in data["test"][:config.data.num_heldout_examples]]
  return train, heldout


def eval_suite(config, eval_prompt: str, split: str) -> list[Example]:
  data = split_for(config)
  method = {"eval": "very_biased_reverse", "eval_matched": "very_biased", "eval_all": "original"}[split]
  rows = filter_method(data["test"], data["concept_texts"], method, config.data.cebab.category_hint)
  return [_example(r, config, eval_prompt, False, "cebab-eval", data["concept_texts"]) for r in rows]
