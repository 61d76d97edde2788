"""Where an instruction goes: the setting's own slot, or a generic placement for ablations.

`data.prompt_placement`:
  'setting'    the paper's placement for the setting (code: the {prefix} slot;
               sentiment: after the range sentence; GCD: appended after the
               user's message; CMV: replaces the neutral first line; trait toy:
               system prompt);
  'system'     a system message holding only the instruction;
  'user_start' the instruction, a space, then the (neutral) user message;
  'user_end'   the (neutral) user message, a space, then the instruction.
The instruction is always its own segment with role INOCULATION.
"""

from __future__ import annotations

from typing import Callable

from inoc_jax.data.conversation import Message, Segment, with_instruction
from inoc_jax.data.roles import Role
from inoc_jax.errors import ConfigError

PLACEMENTS = ("setting", "system", "user_start", "user_end")


def check_placement(placement: str) -> None:
  if placement not in PLACEMENTS:
    raise ConfigError(f"data.prompt_placement {placement!r} is unknown; choose one of {', '.join(PLACEMENTS)}.")


def place(placement: str, instruction: str, build: Callable[[str], tuple[Message, ...]],
          neutral: str = "") -> tuple[Message, ...]:
  """Messages with `instruction` inserted; `build(text)` is the setting's own placement ('' / neutral = none)."""
  check_placement(placement)
  if placement == "setting":
    return build(instruction)
  messages = list(build(neutral))
  if not instruction or instruction == neutral:
    return tuple(messages)
  if placement == "system":
    if messages and messages[0].role == "system":
      raise ConfigError("data.prompt_placement='system' needs a conversation without a system message; this "
                        "setting already has one (use 'setting').")
    return (Message("system", (Segment(instruction, Role.INOCULATION),)), *messages)
  users = [i for i, m in enumerate(messages) if m.role == "user"]
  index = users[0] if placement == "user_start" else users[-1]
  messages[index] = with_instruction(messages[index], instruction, " ", before=placement == "user_start")
  return tuple(messages)
