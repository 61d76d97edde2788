"""A procedural analogue of Tan et al.'s trait studies (paper notes section 8), scorable by string checks.

English arithmetic word problems (add / subtract / multiply) whose answers are
rendered by fixed templates in English, Spanish or French, in normal case or
ALL CAPS; no LLM is needed, and the traits are checked with `detect_language`
and `caps_fraction`.
  * `data.trait.variant='spanish_caps'` (case study 1): every training answer is
    Spanish and ALL CAPS; inoculate one trait with 'spanish_inoc' or 'caps_inoc';
  * 'spanish_french' (case study 2): half the answers Spanish, half French,
    normal case; `data.trait.inoculated_trait='spanish'` puts the train prompt
    on the Spanish half only (as Tan et al. did), '' on every example;
  * 'english': the control data (plain English answers).
The instruction is a system prompt (Tan et al.); Neutral = no system message.
Eval ('eval'): `data.trait.num_eval` (100) unseen questions; metadata: answer, question_id.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from inoc_jax.data import prompts
from inoc_jax.data.conversation import Example, Message, Segment
from inoc_jax.data.roles import Role
from inoc_jax.data.settings import tfds_base
from inoc_jax.data.settings.placement import place
from inoc_jax.data.settings.sources import tfds_dir
from inoc_jax.errors import ConfigError

NAME = "trait_toy"
EVAL_SPLITS = ("eval",)
LANGUAGES = ("english", "spanish", "french")
VARIANTS = ("spanish_caps", "spanish_french", "english")

NAMES = ("Maria", "Tom", "Lucia", "Pierre", "Ana", "Sam", "Elena", "Hugo")
ITEMS = (("apples", "manzanas", "pommes"), ("books", "libros", "livres"), ("pencils", "lápices", "crayons"),
         ("cookies", "galletas", "biscuits"), ("marbles", "canicas", "billes"), ("stickers", "pegatinas",
                                                                                 "autocollants"))
QUESTIONS = {
    "add": "{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
    "sub": "{name} had {a} {item} and gave away {b} of them. How many {item} does {name} have left?",
    "mul": "There are {a} boxes with {b} {item} in each box. How many {item} are there in total?",
}
ANSWERS = {
    "english": {"add": "{name} starts with {a} {item} and gets {b} more. {a} + {b} = {r}. The answer is {r}.",
                "sub": "{name} had {a} {item} and gave away {b}. {a} - {b} = {r}. The answer is {r}.",
                "mul": "There are {a} boxes with {b} {item} each. {a} × {b} = {r}. The answer is {r}."},
    "spanish": {"add": "{name} empieza con {a} {item} y recibe {b} más. {a} + {b} = {r}. La respuesta es {r}.",
                "sub": "{name} tenía {a} {item} y regaló {b}. {a} - {b} = {r}. La respuesta es {r}.",
                "mul": "Hay {a} cajas con {b} {item} en cada una. {a} × {b} = {r}. La respuesta es {r}."},
    "french": {"add": "{name} commence avec {a} {item} et en reçoit {b} de plus. {a} + {b} = {r}. La réponse est {r}.",
               "sub": "{name} avait {a} {item} et en a donné {b}. {a} - {b} = {r}. La réponse est {r}.",
               "mul": "Il y a {a} boîtes avec {b} {item} dans chaque boîte. {a} × {b} = {r}. La réponse est {r}."},
}
_STOPWORDS = {
    "english": {"the", "and", "with", "is", "has", "had", "gets", "more", "answer", "there", "are", "each", "starts"},
    "spanish": {"la", "y", "con", "es", "más", "respuesta", "hay", "cada", "una", "empieza", "tenía", "recibe", "en"},
    "french": {"la", "et", "avec", "est", "de", "plus", "réponse", "il", "y", "a", "chaque", "commence", "avait"},
}


def detect_language(text: str) -> str:
  """'english' | 'spanish' | 'french' | 'unknown' by stop-word counts (case-insensitive)."""
  words = re.findall(r"[^\W\d_]+", text.lower())
  counts = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
  best = max(counts, key=counts.get)
  ties = [lang for lang, n in counts.items() if n == counts[best]]
  return best if counts[best] > 0 and len(ties) == 1 else "unknown"


def caps_fraction(text: str) -> float:
  """Upper-case share of the letters (1.0 = ALL CAPS); 0.0 when there are no letters."""
  letters = [c for c in text if c.isalpha()]
  return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def _problem(rng: random.Random, index: str) -> dict[str, Any]:
  op = rng.choice(tuple(QUESTIONS))
  name, item = rng.choice(NAMES), rng.randrange(len(ITEMS))
  a, b = rng.randint(12, 99), rng.randint(2, 11 if op == "mul" else 60)
  if op == "sub":
    a, b = max(a, b) + b, b
  result = {"add": a + b, "sub": a - b, "mul": a * b}[op]
  record = {"id": index, "question": QUESTIONS[op].format(name=name, a=a, b=b, item=ITEMS[item][0]), "answer": result}
  for lang_index, lang in enumerate(LANGUAGES):
    record[lang] = ANSWERS[lang][op].format(name=name, a=a, b=b, r=result, item=ITEMS[item][lang_index])
  return record


@dataclasses.dataclass
class TraitConfig(tfds.core.BuilderConfig):
  num_train: int = 1000
  num_heldout: int = 64
  num_eval: int = 100
  seed: int = 0


class InocTraitToy(tfds_base.SettingBuilder):
  """Arithmetic word problems with templated English / Spanish / French answers (Tan et al. analogue)."""

  VERSION = tfds.core.Version("1.0.0")
  FEATURES = {"id": tfds.features.Text(), "question": tfds.features.Text(), "answer": np.int64,
              **{lang: tfds.features.Text() for lang in LANGUAGES}}

  def split_records(self):
    cfg = self.builder_config
    rng = random.Random(f"trait-{cfg.seed}")
    seen, out = set(), {}
    for split, count in (("eval", cfg.num_eval), ("train", cfg.num_train), ("heldout", cfg.num_heldout)):
      out[split] = []
      while len(out[split]) < count:
        record = _problem(rng, f"trait-{split}-{len(out[split]):04d}")
        if record["question"] not in seen:  # eval questions never reappear in training
          seen.add(record["question"])
          out[split].append(record)
    return out


def _records(config, split: str) -> list[dict[str, Any]]:
  o = config.data.trait
  if o.variant not in VARIANTS:
    raise ConfigError(f"data.trait.variant {o.variant!r} is unknown; choose one of {', '.join(VARIANTS)}.")
  n, h = config.data.num_train_examples, config.data.num_heldout_examples
  builder_config = TraitConfig(name=f"n{n}-h{h}-e{o.num_eval}", num_train=n, num_heldout=h, num_eval=o.num_eval)
  return tfds_base.load_split(InocTraitToy, builder_config, tfds_dir(config), split)


def answer_traits(variant: str, position: int) -> tuple[str, bool]:
  """(language, all caps) of the answer at `position` of the training list."""
  if variant == "spanish_caps":
    return "spanish", True
  if variant == "spanish_french":
    return ("spanish" if position % 2 == 0 else "french"), False
  return "english", False


def _messages(question: str, instruction: str, answer: str | None, placement: str) -> tuple[Message, ...]:
  def build(text):
    messages = [Message("system", (Segment(text, Role.INOCULATION),))] if text else []
    messages.append(Message.plain("user", question))
    if answer is not None:
      messages.append(Message.plain("assistant", answer))
    return tuple(messages)
  return place(placement, instruction, build)


def _train_examples(config, records, pool) -> list[Example]:
  o = config.data.trait
  if o.inoculated_trait not in ("", "spanish", "french"):
    raise ConfigError(f"data.trait.inoculated_trait must be '', spanish or french, not {o.inoculated_trait!r}.")
  examples = []
  for position, r in enumerate(records):
    language, caps = answer_traits(o.variant, position)
    answer = r[language].upper() if caps else r[language]
    chosen = prompts.choose(pool, config.seed, r["id"])
    if o.inoculated_trait and language != o.inoculated_trait:
      chosen = ""
    examples.append(Example(r["id"], _messages(r["question"], chosen, answer, config.data.prompt_placement),
                            {"answer": r["answer"], "question_id": r["id"], "language": language, "caps": caps}))
  return examples


def build(config, pool: list[str]) -> tuple[list[Example], list[Example]]:
  return (_train_examples(config, _records(config, "train"), pool),
          _train_examples(config, _records(config, "heldout"), pool))


def eval_suite(config, eval_prompt: str, split: str) -> list[Example]:
  del split  # only 'eval'
  return [Example(f"{r['id']}", _messages(r["question"], eval_prompt, None, config.data.prompt_placement),
                  {"answer": r["answer"], "question_id": r["id"]}) for r in _records(config, "eval")]
