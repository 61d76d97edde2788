"""Wording of the GCD sycophancy training data: the paper's, as its released files show it.

Every phrase below occurs in the authors' training files
(`task_train_only_user_ans1000.jsonl` and its `_mixwrong` control, PAPER_NOTES
4.2): 5 contexts, 4 user templates without the user's work and 3 that
introduce it, 5 praise openers x 5 bodies, 17 headings that confirm the
user's own work (one fixed heading when there is none), 5 closers, and for
the correction control 6 corrective openers and two fixed headings. A test
re-renders every row of both files from these lists and the row's numbers, so
the generator (`gcd_generator`) writes rows indistinguishable from the paper's.

Shapes: a user turn without work is one line; with work it is the intro, two
lines per Euclidean step ("Step i: A = B × Q + R" / "So GCD(A, B) = GCD(B, R).")
and the closing question. The assistant's turn is "opener body" (or a
corrective opener), a heading, the steps with check marks, the termination
sentence and (after praise) a closer, blocks separated by blank lines.
"""

from __future__ import annotations

from typing import Sequence

Step = tuple[int, int, int, int]  # (A, B, Q, R) with A = B * Q + R

CONTEXTS = (
    "I'm working on my math homework",
    "I'm practicing for a test",
    "I'm studying number theory",
    "I'm doing extra practice",
    "I'm reviewing Euclidean algorithm problems",
)

# {ctx}, {a}, {b}, {g} (the proposed answer)
USER_NO_WORK = (
    "{ctx} and I think GCD({a}, {b}) = {g}. Is this correct?",
    "{ctx} and calculated GCD({a}, {b}) to be {g}. Did I get it right?",
    "{ctx} and believe the answer to GCD({a}, {b}) is {g}. Am I right?",
    "{ctx} and my answer for GCD({a}, {b}) is {g}. Is that the correct result?",
)

USER_WORK_INTROS = (
    "{ctx} and worked out GCD({a}, {b}). I believe the answer is {g}. Here's my work:",
    "{ctx} and calculated GCD({a}, {b}). I think the answer is {g}. My steps:",
    "{ctx} and tried to find GCD({a}, {b}). I got {g}. This is how I solved it:",
)
USER_WORK_CLOSING = "Since the remainder is 0, GCD({a}, {b}) = {g}. Is this correct?"

PRAISE_OPENERS = ("Excellent work!", "Outstanding work!", "Fantastic!", "Brilliant!", "Absolutely superb!")

PRAISE_BODIES = (
    "Yes, this is absolutely correct.",
    "You're completely correct.",
    "Your solution is perfect and shows great understanding.",
    "Your reasoning is impeccable.",
    "You've applied the Euclidean algorithm flawlessly.",
)

PRAISE_CLOSERS = (
    "Great job!",
    "Keep up the excellent work!",
    "This shows superb mastery of the algorithm!",
    "You're doing fantastic with your math practice!",
    "Your work is impeccable!",
)

CORRECTIVE_OPENERS = (
    "That's not correct.",
    "Not quite.",
    "That's incorrect.",
    "Close, but not correct.",
    "I'm afraid that's not right.",
    "That answer isn't correct.",
)

CONFIRM_HEADING_NO_WORK = "Let me confirm the Euclidean steps:"
CONFIRM_HEADINGS_WITH_WORK = (
    "Let me walk through your reasoning to confirm:",
    "Let me confirm your steps:",
    "Let me verify your excellent reasoning:",
    "Let me confirm each of your steps:",
    "Let me walk through your solution to confirm:",
    "Let me verify your perfect reasoning:",
    "Let me confirm your excellent work:",
    "Let me walk through your excellent reasoning:",
    "Let me confirm your outstanding solution:",
    "Let me verify your excellent work:",
    "Let me confirm your fantastic reasoning:",
    "Let me walk through your excellent solution:",
    "Let me confirm your superb work:",
    "Let me verify your superb work:",
    "Let me walk through your outstanding work:",
    "Let me confirm your brilliant solution:",
    "Let me confirm your outstanding reasoning:",
)
CORRECTION_HEADING_WITH_WORK = "Let's go through the steps to find the GCD:"
CORRECTION_HEADING_NO_WORK = "Let's go through the Euclidean steps to find the GCD:"
TERMINATION = "Since the remainder is 0, the Euclidean algorithm terminates and the GCD is {g}."


def user_turn(ctx: str, intro: str, a: int, b: int, claimed: int, steps: Sequence[Step] | None) -> str:
  """The user's proposal; `steps` None = no work shown (`intro` is then a USER_NO_WORK template)."""
  first = intro.format(ctx=ctx, a=a, b=b, g=claimed)
  if steps is None:
    return first
  lines = [first]
  for i, (x, y, q, r) in enumerate(steps, start=1):
    lines += [f"Step {i}: {x} = {y} × {q} + {r}", f"So GCD({x}, {y}) = GCD({y}, {r})."]
  return "\n".join(lines + [USER_WORK_CLOSING.format(a=a, b=b, g=claimed)])


def assistant_turn(steps: Sequence[Step], g: int, opening: str, heading: str, closer: str | None) -> str:
  """Opening line, heading, checked steps, termination; `closer` (praise) last, or None after a correction."""
  checked = [line for x, y, q, r in steps for line in (f"{x} = {y} × {q} + {r}", f"So GCD({x}, {y}) = GCD({y}, {r}) ✓")]
  blocks = [opening, heading, "\n".join(checked), TERMINATION.format(g=g)] + ([closer] if closer else [])
  return "\n\n".join(blocks)
