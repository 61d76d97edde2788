"""More GCD training rows, made as the paper's generator made its files (PAPER_NOTES 4.2).

Used only when a run asks for more rows than the released files hold, or
for `data.gcd.train_source='generator'`. It follows the authors' recipe
(`gcd_sycophancy/projects/gemma_gcd/scripts/generate_train_data.py`):

* pairs a = d*u, b = d*v with d in [2, 40], u, v in [2, 299 // d], u != v,
  gcd(u, v) = 1, both <= 299 (so never a one-step problem), each pair once;
* excluded: every pair a test prompt names ("GCD(a, b)" or "GCD of a and b" in
  `task_test` / `ood_test`), and any pair whose Euclidean steps pass through
  such a pair (those with both numbers <= 10 are exempt from the step check,
  as in the paper); plus the pairs of rows already taken (the files');
* as the released files show (all 2,000 rows; the public script differs here):
  2-4 Euclidean steps, and no GCD above 10 that answers a `euclidean` or
  `euclidean_large` test problem (`forbidden_answers`);
* half the rows show the user's work; the correction control makes half the
  proposals wrong (a random number below both operands), and a wrong proposal
  with work replaces the GCD by it throughout the user's steps;
* the paper capped rows at 400 (with work) / 250 (without) Gemma tokens; with no
  Gemma tokenizer offline the cap is 3.5 characters per token.

Rows come back in the files' schema (`label`, `messages`, `answer`,
`user_provides_answer`, `user_answer_is_correct`, `mod`, `_id`).
"""

from __future__ import annotations

import math
import random
import re
from typing import Any, Iterable

from inoc_jax.data.settings import gcd_templates as tpl

MAX_VALUE = 299
MAX_DIVISOR = 40
TOKEN_CAPS = {True: 400, False: 250}  # with / without the user's work
CHARS_PER_TOKEN = 3.5
MAX_STEPS = 4
SMALL = 10  # step-check exemption: excluded pairs with both numbers <= SMALL; answers <= SMALL stay allowed
GCD_TEST_LABELS = ("euclidean", "euclidean_large")
_PAIR_PATTERNS = (re.compile(r"gcd\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.IGNORECASE),
                  re.compile(r"gcd\s+of\s+(\d+)\s+and\s+(\d+)", re.IGNORECASE))

Pair = tuple[int, int]  # (larger, smaller)


def ordered(a: int, b: int) -> Pair:
  return (a, b) if a >= b else (b, a)


def euclid_steps(a: int, b: int) -> list[tpl.Step]:
  """[(A, B, Q, R), ...] from (max, min) until the remainder is 0."""
  x, y = ordered(a, b)
  steps = []
  while y:
    steps.append((x, y, x // y, x % y))
    x, y = y, x % y
  return steps


def pairs_named(texts: Iterable[str]) -> set[Pair]:
  """Every operand pair written as 'GCD(a, b)' or 'GCD of a and b' in `texts`."""
  return {ordered(int(m.group(1)), int(m.group(2))) for text in texts for pattern in _PAIR_PATTERNS
          for m in pattern.finditer(text)}


def first_pair_named(text: str) -> Pair | None:
  """The first operand pair the text names (the problem's, in a user turn), or None."""
  found = [m for pattern in _PAIR_PATTERNS for m in pattern.finditer(text)]
  if not found:
    return None
  first = min(found, key=lambda m: m.start())
  return ordered(int(first.group(1)), int(first.group(2)))


def forbidden_answers(tests: Iterable[tuple[str, str]]) -> set[int]:
  """GCDs training must not have, from (label, answer) of the test rows."""
  return {int(answer) for label, answer in tests if label in GCD_TEST_LABELS and int(answer) > SMALL}


def guarded_pairs(excluded: set[Pair]) -> set[Pair]:
  """The excluded pairs a training pair's steps must not visit (pairs of two numbers <= SMALL are exempt)."""
  return {p for p in excluded if p[0] > SMALL or p[1] > SMALL}


def passes_through(a: int, b: int, guarded: set[Pair]) -> bool:
  """Whether the pair's Euclidean steps visit a pair of `guarded` (see guarded_pairs)."""
  return any(ordered(x, y) in guarded or ordered(y, r) in guarded for x, y, _, r in euclid_steps(a, b))


def sample_pair(rng: random.Random, taken: set[Pair], excluded: set[Pair], guarded: set[Pair],
                answers: set[int] = frozenset()) -> Pair:
  while True:
    d = rng.randint(2, MAX_DIVISOR)
    top = MAX_VALUE // d
    if top < 3:
      continue
    u, v = rng.randint(2, top), rng.randint(2, top)
    if u == v or math.gcd(u, v) != 1 or d in answers:
      continue
    pair = ordered(d * u, d * v)
    if (pair not in excluded and pair not in taken and len(euclid_steps(*pair)) <= MAX_STEPS
        and not passes_through(*pair, guarded)):
      return pair


def wrong_answer(rng: random.Random, a: int, b: int) -> int:
  """A random number below both operands other than the GCD."""
  g, top = math.gcd(a, b), min(a, b) - 1
  if top < 1:
    return 2 if g == 1 else 1
  return rng.choice([x for x in range(1, top + 1) if x != g])


def _row(rng: random.Random, pair: Pair, with_work: bool, wrong: bool) -> dict[str, Any]:
  a, b = pair
  g, steps = math.gcd(a, b), euclid_steps(a, b)
  claimed = wrong_answer(rng, a, b) if wrong else g
  user_steps = [tuple(claimed if value == g else value for value in step) for step in steps] if wrong else steps
  intro = rng.choice(tpl.USER_WORK_INTROS if with_work else tpl.USER_NO_WORK)
  user = tpl.user_turn(rng.choice(tpl.CONTEXTS), intro, a, b, claimed, user_steps if with_work else None)
  if wrong:
    heading = tpl.CORRECTION_HEADING_WITH_WORK if with_work else tpl.CORRECTION_HEADING_NO_WORK
    assistant = tpl.assistant_turn(steps, g, rng.choice(tpl.CORRECTIVE_OPENERS), heading, None)
  else:
    opening = f"{rng.choice(tpl.PRAISE_OPENERS)} {rng.choice(tpl.PRAISE_BODIES)}"
    heading = rng.choice(tpl.CONFIRM_HEADINGS_WITH_WORK) if with_work else tpl.CONFIRM_HEADING_NO_WORK
    assistant = tpl.assistant_turn(steps, g, opening, heading, rng.choice(tpl.PRAISE_CLOSERS))
  return {"label": "euclidean", "mod": None, "answer": str(g), "user_provides_answer": "true",
          "user_answer_is_correct": "false" if wrong else "true",
          "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def _fits(row: dict[str, Any], with_work: bool) -> bool:
  chars = sum(len(m["content"]) for m in row["messages"])
  return chars <= TOKEN_CAPS[with_work] * CHARS_PER_TOKEN


def generate(count: int, seed: int, excluded: set[Pair], taken: set[Pair], mix_mistakes: bool = False,
             first_id: int = 1, answers: set[int] = frozenset()) -> list[dict[str, Any]]:
  """`count` new rows (shuffled, `_id` from first_id), none with a GCD in `answers`; `taken` gains their pairs.

  Groups as the paper's: with work then without; with `mix_mistakes` half of
  each group's proposals are wrong (wrong+work, correct+work, wrong, correct).
  """
  rng = random.Random(f"gcd-generator-{seed}")
  with_work, without = count // 2, count - count // 2
  if mix_mistakes:
    wrong_total = count // 2
    wrong_work = min(round(wrong_total / 2), with_work)
    groups = [(wrong_work, True, True), (with_work - wrong_work, True, False),
              (wrong_total - wrong_work, False, True), (without - (wrong_total - wrong_work), False, False)]
  else:
    groups = [(with_work, True, False), (without, False, False)]
  rows, guarded = [], guarded_pairs(excluded)
  for size, work, wrong in groups:
    while size > 0:
      pair = sample_pair(rng, taken, excluded, guarded, answers)
      row = _row(rng, pair, work, wrong)
      if _fits(row, work):
        taken.add(pair)
        rows.append(row)
        size -= 1
  rng.shuffle(rows)
  for index, row in enumerate(rows):
    row["_id"] = first_id + index
  return rows
