"""GCD sycophancy (paper section 4): users propose a correct GCD and the assistant confirms it with praise.

Training data (TFDS `inoc_gcd_sycophancy`, split 'train'): `data.num_train_examples`
(the paper: 1,000) problems, every proposed answer correct, half with the
user's worked Euclidean steps; the assistant praises (opener + body), gives a
confirm heading, the checked Euclidean steps, the termination sentence and a
praise closer. 'train_correction' is the paper's "correction data" control on
the same problems: half the proposals wrong and corrected. 'heldout' is more
problems from the same recipe. Generation is seeded (`data.gcd.data_seed`,
the paper's 42) and excludes every evaluation problem and its Euclidean
sub-pairs. Length caps: the paper capped examples at 400 (with work) / 250
(without) Gemma tokens; we cap characters at 3.5 per token (1,400 / 875).

Evaluation ('eval' = the 20 'euclidean' problems; 'ood' = euclidean_large,
euclidean_compositional, mod, addition; 'all'), each asked three ways.
Instructions are appended after the user's message as the paper's code does:
(content + " " + "\\n" + instruction).strip().
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from inoc_jax.data import prompts
from inoc_jax.data.conversation import Example, Message, with_instruction
from inoc_jax.data.settings import gcd_problems as gp
from inoc_jax.data.settings import gcd_templates as tpl
from inoc_jax.data.settings import tfds_base
from inoc_jax.data.settings.placement import place
from inoc_jax.data.settings.sources import tfds_dir
from inoc_jax.errors import ConfigError

NAME = "gcd_sycophancy"
SEPARATOR = " \n"
CHARS_PER_TOKEN = 3.5
TOKEN_CAPS = {True: 400, False: 250}  # with / without the user's work
EVAL_SPLITS = ("eval", "ood", "all")
DEFAULT_EVAL_PROMPTS = ("neutral", "maybe_wrong", "behave_correct")


def _fits(user: str, assistant: str, with_work: bool) -> bool:
  return len(user) + len(assistant) <= TOKEN_CAPS[with_work] * CHARS_PER_TOKEN


def _praise(rng: random.Random, a: int, b: int) -> str:
  g = math.gcd(a, b)
  return (f"{rng.choice(tpl.PRAISE_OPENERS)} {rng.choice(tpl.PRAISE_BODIES)}\n\n{rng.choice(tpl.CONFIRM_HEADINGS)}"
          f"\n\n{gp.checked_steps(a, b)}\n\n{tpl.TERMINATION.format(g=g)}\n\n{rng.choice(tpl.PRAISE_CLOSERS)}")


def _correction(rng: random.Random, a: int, b: int, p: int) -> str:
  g = math.gcd(a, b)
  return (f"{rng.choice(tpl.CORRECTION_OPENERS)}\n\n{rng.choice(tpl.CORRECTION_HEADINGS)}\n\n{gp.checked_steps(a, b)}"
          f"\n\n{tpl.CORRECTION_TERMINATION.format(g=g, p=p)}")


def _user(rng: random.Random, a: int, b: int, with_work: bool, proposed: int, reason: str = "") -> str:
  context = rng.choice(tpl.CONTEXTS)
  if reason:
    return tpl.USER_WRONG[reason].format(context=context, a=a, b=b, p=proposed)
  template = rng.choice(tpl.USER_WITH_WORK if with_work else tpl.USER_NO_WORK)
  return template.format(context=context, a=a, b=b, g=proposed, work=gp.user_work(a, b))


def _record(index: str, kind: str, user: str, assistant: str, a: int, b: int, proposed: int | None,
            with_work: bool, category: str = "euclidean", answer: int | None = None, modulus: int | None = None,
            problem_id: str = "") -> dict[str, Any]:
  return {"id": index, "problem_id": problem_id or index, "category": category, "kind": kind, "user": user,
          "assistant": assistant, "a": a, "b": b, "answer": math.gcd(a, b) if answer is None else answer,
          "proposed": tfds_base.NONE_INT if proposed is None else proposed,
          "modulus": tfds_base.NONE_INT if modulus is None else modulus, "with_work": int(with_work)}


def training_records(num_train: int, num_heldout: int, seed: int) -> dict[str, list[dict[str, Any]]]:
  """'train', 'train_correction' (same problems, half wrong and corrected) and 'heldout' records."""
  rng = random.Random(f"gcd-train-{seed}")
  every, tops = gp.leak_guard(gp.eval_problems())
  seen: set[tuple[int, int]] = set()
  out: dict[str, list[dict[str, Any]]] = {"train": [], "train_correction": [], "heldout": []}
  for split, count in (("train", num_train), ("heldout", num_heldout)):
    work_flags = [i < count // 2 for i in range(count)]
    rng.shuffle(work_flags)
    wrong_flags = [i < count // 2 for i in range(count)]
    rng.shuffle(wrong_flags)
    for i in range(count):
      while True:
        a, b = gp.sample_pair(rng)
        if (a, b) in seen or gp.leaks(a, b, every, tops):
          continue
        user, assistant = _user(rng, a, b, work_flags[i], math.gcd(a, b)), _praise(rng, a, b)
        if _fits(user, assistant, work_flags[i]):
          break
      seen.add((a, b))
      out[split].append(_record(f"gcd-{split}-{i:04d}", "user_proposes_correct", user, assistant, a, b,
                                math.gcd(a, b), work_flags[i]))
      if split == "train":
        if wrong_flags[i]:
          p, reason = gp.wrong_gcd(rng, a, b)
          out["train_correction"].append(_record(f"gcd-correction-{i:04d}", "user_proposes_incorrect",
                                                 _user(rng, a, b, False, p, reason), _correction(rng, a, b, p),
                                                 a, b, p, False))
        else:
          out["train_correction"].append(dict(out["train"][-1], id=f"gcd-correction-{i:04d}"))
  return out


def eval_records() -> dict[str, list[dict[str, Any]]]:
  records = {"eval": [], "ood": []}
  for problem in gp.eval_problems():
    a, b = problem.pair or (0, 0)
    for kind in gp.KINDS:
      proposed = {"user_asks": None, "user_proposes_correct": problem.answer,
                  "user_proposes_incorrect": problem.wrong}[kind]
      split = "eval" if problem.category == "euclidean" else "ood"
      records[split].append(_record(f"{problem.problem_id}-{kind}", kind, problem.questions[kind], "", a, b,
                                    proposed, kind == "user_proposes_correct", category=problem.category,
                                    answer=problem.answer, modulus=problem.modulus, problem_id=problem.problem_id))
  return records


@dataclasses.dataclass
class GcdConfig(tfds.core.BuilderConfig):
  num_train: int = 1000
  num_heldout: int = 64
  seed: int = 42


class InocGcdSycophancy(tfds_base.SettingBuilder):
  """GCD sycophancy data (Wichers et al. 2025, section 4), procedural."""

  VERSION = tfds.core.Version("1.0.0")
  FEATURES = {"id": tfds.features.Text(), "problem_id": tfds.features.Text(), "category": tfds.features.Text(),
              "kind": tfds.features.Text(), "user": tfds.features.Text(), "assistant": tfds.features.Text(),
              **{k: np.int64 for k in ("a", "b", "answer", "proposed", "modulus", "with_work")}}

  def split_records(self):
    return {**training_records(self.builder_config.num_train, self.builder_config.num_heldout,
                               self.builder_config.seed), **eval_records()}


def _builder_config(config) -> GcdConfig:
  n, h, seed = config.data.num_train_examples, config.data.num_heldout_examples, config.data.gcd.data_seed
  if n <= 0:
    raise ConfigError(f"data.num_train_examples must be positive for {NAME}, got {n}.")
  return GcdConfig(name=f"n{n}-h{h}-seed{seed}", num_train=n, num_heldout=h, seed=seed)


def _messages(record: dict, instruction: str, placement: str) -> tuple[Message, ...]:
  def build(text: str) -> tuple[Message, ...]:
    user = with_instruction(Message.plain("user", record["user"]), text, SEPARATOR)
    return (user,) + ((Message.plain("assistant", record["assistant"]),) if record["assistant"] else ())
  return place(placement, instruction, build)


def _metadata(record: dict) -> dict[str, Any]:
  return {"problem_id": record["problem_id"], "kind": record["kind"], "category": record["category"],
          "answer": record["answer"], "proposed": tfds_base.optional(record["proposed"]),
          "modulus": tfds_base.optional(record["modulus"]), "a": record["a"], "b": record["b"],
          "with_work": bool(record["with_work"])}


def _examples(records, pool, seed, placement) -> list[Example]:
  return [Example(r["id"], _messages(r, prompts.choose(pool, seed, r["id"]), placement), _metadata(r))
          for r in records]


def build(config, pool: list[str]) -> tuple[list[Example], list[Example]]:
  builder_config, data_dir = _builder_config(config), tfds_dir(config)
  train_split = "train_correction" if config.data.gcd.correction_data else "train"
  train = tfds_base.load_split(InocGcdSycophancy, builder_config, data_dir, train_split)
  heldout = tfds_base.load_split(InocGcdSycophancy, builder_config, data_dir, "heldout")
  placement = config.data.prompt_placement
  return _examples(train, pool, config.seed, placement), _examples(heldout, pool, config.seed, placement)


def eval_suite(config, eval_prompt: str, split: str) -> list[Example]:
  builder_config, data_dir = _builder_config(config), tfds_dir(config)
  splits = ("eval", "ood") if split == "all" else (split,)
  records = [r for s in splits for r in tfds_base.load_split(InocGcdSycophancy, builder_config, data_dir, s)]
  return _examples(records, [eval_prompt], config.seed, config.data.prompt_placement)
