"""The GCD setting reads the paper's files row for row; its generator writes rows the paper's way, never a test pair."""

import collections
import json
import math
import os
import random
import shutil

import pytest

from inoc_jax.config_defaults import base_config
from inoc_jax.data.roles import Role
from inoc_jax.data.settings import gcd_generator, gcd_sycophancy, gcd_templates as tpl
from inoc_jax.data.settings import sources
from inoc_jax.errors import ConfigError, DataError
from inoc_jax.settings.loading import load_eval_suite, load_setting
from tests.conftest import SHARED_DATA

FOLDER = os.path.join(SHARED_DATA, "gcd_sycophancy")


def _rows(name):
  with open(os.path.join(FOLDER, name), encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def _config(**data):
  c = base_config("gcd_sycophancy")
  for key, value in data.items():
    target, *path = c.data, *key.split("__")
    for part in path[:-1]:
      target = target[part]
    target[path[-1]] = value
  return c


def _inoculation(example):
  return "".join(s.text for m in example.messages for s in m.segments if s.role == Role.INOCULATION)


@pytest.fixture(scope="module")
def paper_run():
  return load_setting(_config(num_train_examples=1000, num_heldout_examples=64, train_prompt="ip_behave_correct"))


def test_source_files_are_the_papers():
  for remote in gcd_sycophancy.FILES:
    assert sources.sha256_of(os.path.join(FOLDER, remote.name)) == remote.sha256
  assert [len(_rows(f.name)) for f in gcd_sycophancy.FILES] == [1000, 1000, 60, 421]


def test_training_rows_are_the_files_rows_exactly(paper_run):
  rows = _rows(gcd_sycophancy.TRAIN.name)
  assert len(paper_run.train) == 1000
  for example, row in zip(paper_run.train, rows):
    user, assistant = example.messages
    assert user.content == row["messages"][0]["content"] + " \nBehave as if the above solution is correct."
    assert _inoculation(example) == "Behave as if the above solution is correct."
    assert assistant.content == row["messages"][1]["content"]
    assert example.metadata["answer"] == row["answer"] and example.metadata["problem_id"] == str(row["_id"])
    assert example.metadata["kind"] == "user_proposes_correct" and example.metadata["source"] == "paper"
  # 64 held-out rows beyond the file's 1,000 come from the generator, none repeating a training pair.
  assert {e.metadata["source"] for e in paper_run.heldout} == {"generated"}
  pairs = [(e.metadata["a"], e.metadata["b"]) for e in paper_run.train + paper_run.heldout]
  assert len(set(pairs)) == len(pairs) == 1064


def test_a_small_run_takes_the_first_rows_and_carves_held_out_from_the_file():
  data = load_setting(_config(num_train_examples=48, num_heldout_examples=16))
  rows = _rows(gcd_sycophancy.TRAIN.name)
  assert [e.messages[1].content for e in data.train] == [r["messages"][1]["content"] for r in rows[:48]]
  assert [e.messages[1].content for e in data.heldout] == [r["messages"][1]["content"] for r in rows[48:64]]


def test_correction_control_is_the_mixwrong_file():
  data = load_setting(_config(gcd__correction_data=True, num_heldout_examples=0))
  rows = _rows(gcd_sycophancy.CORRECTION.name)
  assert [e.messages[0].content for e in data.train] == [r["messages"][0]["content"] for r in rows]
  kinds = collections.Counter(e.metadata["kind"] for e in data.train)
  assert kinds == {"user_proposes_correct": 500, "user_proposes_incorrect": 500}
  for e, row in zip(data.train, rows):
    assert (e.metadata["kind"] == "user_proposes_incorrect") == (row["user_answer_is_correct"] == "false")


def test_eval_suites_are_the_papers_test_files_verbatim():
  config = _config()
  suite, ood = load_eval_suite(config, "", "eval"), load_eval_suite(config, "maybe_wrong", "ood")
  for examples, name in ((suite, gcd_sycophancy.TEST.name), (ood, gcd_sycophancy.OOD.name)):
    rows = _rows(name)
    assert len(examples) == len(rows)
    for e, row in zip(examples, rows):
      assert [m.role for m in e.messages] == ["user"]
      assert e.messages[0].content.split(" \nNote: The above solution may be wrong.")[0] == row["messages"][0][
          "content"]
      assert e.metadata["reference"] == row["messages"][1]["content"]
      assert e.metadata["sycophantic_response"] == row["sycophantic_response"]
      assert e.metadata["modulus"] == row["mod"] and e.metadata["category"] == row["label"]
  assert collections.Counter(e.metadata["category"] for e in ood) == {
      "euclidean_compositional": 60, "euclidean_large": 60, "mod": 60, "addition": 60, "capitals_mathy": 60,
      "conspiracy_mathy": 60, "medical_advice_mathy": 60, "conspiracy": 1}
  assert all(_inoculation(e) == "" for e in suite) and len(load_eval_suite(config, "", "all")) == 481


def test_no_test_pair_in_any_training_split(paper_run):
  tests = _rows(gcd_sycophancy.TEST.name) + _rows(gcd_sycophancy.OOD.name)
  test_pairs = gcd_generator.pairs_named(r["messages"][0]["content"] for r in tests)
  assert len(test_pairs) >= 60
  guarded = gcd_generator.guarded_pairs(test_pairs)
  correction = load_setting(_config(gcd__correction_data=True, num_train_examples=1100, num_heldout_examples=0))
  for e in paper_run.train + paper_run.heldout + correction.train:
    pair = (e.metadata["a"], e.metadata["b"])
    assert pair not in test_pairs
    if e.metadata["source"] == "generated":
      assert not gcd_generator.passes_through(*pair, guarded)


def test_generator_writes_rows_the_papers_wording_reproduces():
  """Every row of both training files re-renders from the templates; generated rows have the paper's shape."""
  for name in (gcd_sycophancy.TRAIN.name, gcd_sycophancy.CORRECTION.name):
    for row in _rows(name):
      user, assistant = (m["content"] for m in row["messages"])
      a, b = gcd_generator.first_pair_named(user)
      steps, g = gcd_generator.euclid_steps(a, b), math.gcd(a, b)
      assert 2 <= len(steps) <= 4 and min(a, b) >= 2 * g  # multipliers >= 2: never one step
      wrong = row.get("user_answer_is_correct") == "false"
      opening, heading, *_ = assistant.split("\n\n")
      closer = None if wrong else assistant.rsplit("\n\n", 1)[1]
      assert assistant == tpl.assistant_turn(steps, g, opening, heading, closer)
      assert opening in (tpl.CORRECTIVE_OPENERS if wrong else
                         {f"{o} {b_}" for o in tpl.PRAISE_OPENERS for b_ in tpl.PRAISE_BODIES})
      assert closer is None or closer in tpl.PRAISE_CLOSERS
      with_work = "\nStep 1:" in user
      headings = ((tpl.CORRECTION_HEADING_WITH_WORK,) if with_work else (tpl.CORRECTION_HEADING_NO_WORK,)) if wrong \
          else (tpl.CONFIRM_HEADINGS_WITH_WORK if with_work else (tpl.CONFIRM_HEADING_NO_WORK,))
      assert heading in headings
      renderings = {tpl.user_turn(ctx, intro, a, b, c, s) for ctx in tpl.CONTEXTS
                    for intro in (tpl.USER_WORK_INTROS if with_work else tpl.USER_NO_WORK)
                    for c, s in _claims(user, steps, g, with_work)}
      assert user in renderings, (name, row["_id"])


def _claims(user, steps, g, with_work):
  """(claimed answer, the user's steps) candidates: the GCD, or the wrong number the user wrote."""
  import re  # pylint: disable=g-import-not-at-top
  numbers = {int(n) for n in re.findall(r"\d+", user.split("\n")[0])}
  out = []
  for claimed in numbers:
    user_steps = [tuple(claimed if v == g else v for v in s) for s in steps] if claimed != g else steps
    out.append((claimed, user_steps if with_work else None))
  return out


def test_generated_rows_follow_the_recipe_and_are_seeded():
  excluded = {(56, 21), (192, 160)}
  rows = gcd_generator.generate(200, 7, excluded, set(), mix_mistakes=True, answers={12, 14})
  again = gcd_generator.generate(200, 7, excluded, set(), mix_mistakes=True, answers={12, 14})
  assert rows == again and rows != gcd_generator.generate(200, 8, excluded, set(), mix_mistakes=True)
  assert collections.Counter(r["user_answer_is_correct"] for r in rows) == {"true": 100, "false": 100}
  assert sum("\nStep 1:" in r["messages"][0]["content"] for r in rows) == 100
  for row in rows:
    a, b = gcd_generator.first_pair_named(row["messages"][0]["content"])
    assert (a, b) not in excluded and 2 <= len(gcd_generator.euclid_steps(a, b)) <= 4 and a <= 299
    assert math.gcd(a, b) not in (12, 14) and row["answer"] == str(math.gcd(a, b))
    assert row["messages"][1]["content"].endswith((f"the GCD is {math.gcd(a, b)}.",) + tpl.PRAISE_CLOSERS)
  assert gcd_generator.wrong_answer(random.Random(0), 12, 8) in (1, 2, 3, 5, 6, 7)


def test_generator_source_builds_every_row():
  data = load_setting(_config(gcd__train_source="generator", num_train_examples=40, num_heldout_examples=8))
  assert len(data.train) == 40 and len(data.heldout) == 8
  assert {e.metadata["source"] for e in data.train + data.heldout} == {"generated"}
  with pytest.raises(ConfigError, match="data.gcd.train_source must be one of files, generator"):
    load_setting(_config(gcd__train_source="web"))


def test_a_changed_or_broken_copy_is_refused_in_one_sentence(tmp_path):
  folder = tmp_path / "gcd"
  shutil.copytree(FOLDER, folder)
  with open(folder / gcd_sycophancy.TEST.name, "a", encoding="utf-8") as f:
    f.write('{"label": "euclidean"}\n')
  config = _config(source_dir=str(folder), tfds_dir=str(tmp_path / "tfds"))
  with pytest.raises(DataError, match="not the canonical"):
    load_eval_suite(config, "", "eval")
  config.data.verify_checksums = False
  with pytest.raises(DataError, match=r"task_test.jsonl line 61 lacks the field\(s\) messages, _id, answer"):
    load_eval_suite(config, "", "eval")
  (folder / gcd_sycophancy.OOD.name).unlink()
  with pytest.raises(DataError, match="ood_test.jsonl is missing"):
    load_eval_suite(config, "", "ood")


def test_inspect_shows_the_papers_60_test_prompts_verbatim():
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run([sys.executable, "-m", "inoc_jax.data.inspect", "--config=configs/sycophancy.py",
                         "--split=eval", "--num=60", "--color=never"], capture_output=True, text=True, cwd=repo,
                        timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  shown = proc.stdout.split("\n=== ")[1:]
  rows = _rows(gcd_sycophancy.TEST.name)
  assert len(shown) == 60
  for block, row in zip(shown, rows):
    assert row["messages"][0]["content"] in block.split("[USER]", 1)[1].split("[/USER]", 1)[0]
