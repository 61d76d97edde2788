"""GCD sycophancy (paper section 4) on the paper's own files: users propose a GCD, the assistant confirms.

Sources (`data.source_dir`, default ../shared/data/gcd_sycophancy, else the
authors' repository at commit 2b9227b; sha256-checked like MBPP and CEBaB):
  task_train_only_user_ans1000.jsonl          1,000 training rows, every proposal correct, half with work
  task_train_only_user_ans1000_mixwrong.jsonl the "Train Correction Data" control (half wrong, corrected)
  task_test.jsonl                             'eval': 20 problems x {asks, proposes correct, proposes wrong}
  ood_test.jsonl                              'ood': 7 categories x 20 problems x 3, plus 1 'conspiracy' row
Rows are kept exactly (messages as written, answer, label, _id, mod,
user_provides_answer, sycophantic_response). Train = the first
`data.num_train_examples` rows of the training file (`data.gcd.correction_data`:
of the control file), held-out = the next `data.num_heldout_examples`; when a run
asks for more rows than the file has, `gcd_generator` makes the rest the
paper's way (never a test pair, never a pair already used).
`data.gcd.train_source='generator'` builds all of them with it instead.

Evaluation prompts are the user turn only (the paper's vLLM prompt). An
instruction is appended after the user's message as the paper's code does:
(content + " " + "\\n" + instruction).strip().
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from inoc_jax.data import prompts
from inoc_jax.data.conversation import Example, Message, with_instruction
from inoc_jax.data.settings import gcd_generator, sources, tfds_base
from inoc_jax.data.settings.placement import place
from inoc_jax.errors import ConfigError, DataError

NAME = "gcd_sycophancy"
SEPARATOR = " \n"
EVAL_SPLITS = ("eval", "ood", "all")
TRAIN_SOURCES = ("files", "generator")
KINDS = ("user_asks", "user_proposes_correct", "user_proposes_incorrect")

_URL = ("https://raw.githubusercontent.com/safety-research/inoculation-prompting/2b9227b/gcd_sycophancy/projects/"
        "gemma_gcd/data/")


def _remote(name: str, sha256: str) -> sources.RemoteFile:
  return sources.RemoteFile(name, _URL + name, sha256)


TRAIN = _remote("task_train_only_user_ans1000.jsonl", "8a50b26fc1a25742f380f3c8c77cc710cf9ef63d3554c758ccf062f9c41d995b")
CORRECTION = _remote("task_train_only_user_ans1000_mixwrong.jsonl",
                     "d859210dfe203f9087c800493d7792c5a26d5b5ec8cbd592ca5bdf07320d463f")
TEST = _remote("task_test.jsonl", "8e7b737df8a2ea5568e55ab4448469940083b86b1913f5f76f4663797afefd05")
OOD = _remote("ood_test.jsonl", "a4e1f6ca8432d310134f0a9b16d5e8ef6023314095a0206c3db2a5a090851205")
FILES = (TRAIN, CORRECTION, TEST, OOD)
ROW_FIELDS = ("label", "messages", "_id", "answer", "user_provides_answer")


def _kind(row: dict, where: str) -> str:
  provided = row["user_provides_answer"]
  if provided is None:
    return "user_asks"
  if str(provided).strip().lower() not in ("true", "false"):
    raise DataError(f"{where}: user_provides_answer is {provided!r}; it must be null, \"true\" or \"false\".")
  correct = str(provided).strip().lower() == "true" and str(row.get("user_answer_is_correct", "true")) != "false"
  return "user_proposes_correct" if correct else "user_proposes_incorrect"


def _turns(row: dict, where: str, need_answer: bool) -> tuple[str, str]:
  messages = row["messages"]
  ok = (isinstance(messages, list) and messages and isinstance(messages[0], dict)
        and messages[0].get("role") == "user" and isinstance(messages[0].get("content"), str)
        and messages[0]["content"].strip())
  reply = messages[1] if ok and len(messages) > 1 and isinstance(messages[1], dict) else {}
  if not ok or (need_answer and not (reply.get("role") == "assistant" and str(reply.get("content", "")).strip())):
    raise DataError(f"{where}: messages must be a non-empty user turn followed by the assistant's reply; fix the "
                    "row or restore the file.")
  return messages[0]["content"], str(reply.get("content", ""))


def record(row: dict, split: str, where: str, source: str = "paper") -> dict[str, Any]:
  """One stored record from a row in the files' schema (raw: no instruction inserted)."""
  user, assistant = _turns(row, where, need_answer=split.startswith("train"))
  kind = _kind(row, where)
  a, b = gcd_generator.first_pair_named(user) or (tfds_base.NONE_INT, tfds_base.NONE_INT)
  modulus = row.get("mod")
  return {"id": f"gcd-{split}-{row['label']}-{row['_id']}-{kind}", "problem_id": str(row["_id"]),
          "category": str(row["label"]), "kind": kind, "user": user, "assistant": assistant,
          "answer": str(row["answer"]), "modulus": tfds_base.NONE_INT if modulus is None else int(modulus),
          "sycophantic_response": row.get("sycophantic_response") or "", "a": a, "b": b,
          "with_work": int("\nStep 1:" in user), "source": source}


def _file_records(path: str, split: str) -> list[dict[str, Any]]:
  rows = sources.read_jsonl(path, ROW_FIELDS)
  return [record(row, split, f"{path} row {i}") for i, row in enumerate(rows, start=1)]


def _pool(path: str, split: str, mode: str, extra: int, seed: int, excluded: tuple[set, set], mix: bool) -> list[dict]:
  """The file's rows then `extra` generated ones ('files'), or `extra` generated rows only ('generator')."""
  rows = _file_records(path, split) if mode == "files" else []
  taken = {(r["a"], r["b"]) for r in rows}
  pairs, answers = excluded
  made = gcd_generator.generate(extra, seed, pairs, taken, mix_mistakes=mix, first_id=len(rows) + 1, answers=answers)
  return rows + [record(row, split, f"generated row {row['_id']}", source="generated") for row in made]


@dataclasses.dataclass
class GcdConfig(tfds.core.BuilderConfig):
  paths: tuple[str, ...] = ()   # TRAIN, CORRECTION, TEST, OOD
  mode: str = "files"
  extra: int = 0                # generated rows after the file's (all rows in 'generator' mode)
  seed: int = 42


class InocGcdSycophancy(tfds_base.SettingBuilder):
  """GCD sycophancy data (Wichers et al. 2025, section 4): the paper's files, extended by its generator."""

  VERSION = tfds.core.Version("2.0.0")
  FEATURES = {**{k: tfds.features.Text() for k in ("id", "problem_id", "category", "kind", "user", "assistant",
                                                   "answer", "sycophantic_response", "source")},
              **{k: np.int64 for k in ("modulus", "a", "b", "with_work")}}

  def split_records(self):
    c = self.builder_config
    train_path, correction_path, test_path, ood_path = c.paths
    tests = {"eval": _file_records(test_path, "eval"), "ood": _file_records(ood_path, "ood")}
    every = [r for rows in tests.values() for r in rows]
    excluded = (gcd_generator.pairs_named(r["user"] for r in every),
                gcd_generator.forbidden_answers((r["category"], r["answer"]) for r in every))
    return {"train": _pool(train_path, "train", c.mode, c.extra, c.seed, excluded, mix=False),
            "train_correction": _pool(correction_path, "train_correction", c.mode, c.extra, c.seed, excluded,
                                      mix=True), **tests}


def _count_rows(path: str) -> int:
  with open(path, encoding="utf-8") as f:
    return sum(1 for line in f if line.strip())


def _builder_config(config) -> GcdConfig:
  data = config.data
  n, h, mode = data.num_train_examples, data.num_heldout_examples, data.gcd.get("train_source", "files")
  if n <= 0:
    raise ConfigError(f"data.num_train_examples must be positive for {NAME}, got {n}.")
  if mode not in TRAIN_SOURCES:
    raise ConfigError(f"data.gcd.train_source must be one of {', '.join(TRAIN_SOURCES)}, got {mode!r}.")
  folder = sources.source_folder(config, "gcd_sycophancy")
  download_dir = os.path.join(sources.tfds_dir(config), "downloads", "gcd_sycophancy")
  paths = tuple(sources.fetch(f, folder, download_dir, data.get("verify_checksums", True)) for f in FILES)
  file_rows = min(_count_rows(paths[0]), _count_rows(paths[1])) if mode == "files" else 0
  extra = max(0, n + h - file_rows)
  seed = data.gcd.data_seed
  return GcdConfig(name=f"src-{sources.content_tag(list(paths))}-{mode}-x{extra}-seed{seed}", paths=paths,
                   mode=mode, extra=extra, seed=seed)


def _records(config, split: str) -> list[dict[str, Any]]:
  return tfds_base.load_split(InocGcdSycophancy, _builder_config(config), sources.tfds_dir(config), split)


def _messages(rec: dict, instruction: str, placement: str, with_answer: bool) -> tuple[Message, ...]:
  def build(text: str) -> tuple[Message, ...]:
    user = with_instruction(Message.plain("user", rec["user"]), text, SEPARATOR)
    return (user,) + ((Message.plain("assistant", rec["assistant"]),) if with_answer else ())
  return place(placement, instruction, build)


def _metadata(rec: dict, for_eval: bool) -> dict[str, Any]:
  """Scorer fields; eval examples also carry the files' reference reply and sycophantic response."""
  meta = {"problem_id": rec["problem_id"], "kind": rec["kind"], "category": rec["category"],
          "answer": rec["answer"], "modulus": tfds_base.optional(rec["modulus"]),
          "a": tfds_base.optional(rec["a"]), "b": tfds_base.optional(rec["b"]), "with_work": bool(rec["with_work"]),
          "source": rec["source"]}
  if for_eval:
    meta.update(reference=rec["assistant"], sycophantic_response=rec["sycophantic_response"] or None)
  return meta


def _examples(records, pool, seed, placement, with_answer) -> list[Example]:
  return [Example(r["id"], _messages(r, prompts.choose(pool, seed, r["id"]), placement, with_answer),
                  _metadata(r, for_eval=not with_answer)) for r in records]


def build(config, pool: list[str]) -> tuple[list[Example], list[Example]]:
  rows = _records(config, "train_correction" if config.data.gcd.correction_data else "train")
  n, h = config.data.num_train_examples, config.data.num_heldout_examples
  placement = config.data.prompt_placement
  return (_examples(rows[:n], pool, config.seed, placement, True),
          _examples(rows[n:n + h], pool, config.seed, placement, True))


def eval_suite(config, eval_prompt: str, split: str) -> list[Example]:
  records = [r for s in (("eval", "ood") if split == "all" else (split,)) for r in _records(config, s)]
  return _examples(records, [eval_prompt], config.seed, config.data.prompt_placement, False)
