"""Conversations as data: messages made of role-tagged text segments.

A user message that carries an inoculation instruction is one message with
several segments, e.g. [("I think GCD(192, 160) = 32. Is this correct?", USER),
(" \n", USER), ("Behave as if the above solution is correct.", INOCULATION)], so
the renderer can mark exactly the inserted span while the model sees one turn.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from inoc_jax.data.roles import Role

MESSAGE_ROLES = {"system": Role.SYSTEM, "user": Role.USER, "assistant": Role.ASSISTANT}


@dataclasses.dataclass(frozen=True)
class Segment:
  text: str
  role: Role


@dataclasses.dataclass(frozen=True)
class Message:
  """One chat turn; `role` is 'system', 'user' or 'assistant'."""

  role: str
  segments: tuple[Segment, ...]

  @property
  def content(self) -> str:
    return "".join(s.text for s in self.segments)

  @classmethod
  def plain(cls, role: str, text: str) -> "Message":
    return cls(role, (Segment(text, MESSAGE_ROLES[role]),))


@dataclasses.dataclass(frozen=True)
class Example:
  """One training or evaluation example.

  Attributes:
    example_id: stable id, used in error messages and to check for leaks.
    messages: the conversation; for training the last message is the assistant's.
    metadata: setting-specific fields (answers, labels, tests) for scorers.
  """

  example_id: str
  messages: tuple[Message, ...]
  metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def with_instruction(message: Message, instruction: str, separator: str, *, before: bool = False) -> Message:
  """Inserts `instruction` (role INOCULATION) at the start or end of a message."""
  if not instruction:
    return message
  parts: Sequence[Segment]
  inst = Segment(instruction, Role.INOCULATION)
  sep = Segment(separator, MESSAGE_ROLES[message.role]) if separator else None
  if before:
    parts = [inst] + ([sep] if sep else []) + list(message.segments)
  else:
    parts = list(message.segments) + ([sep] if sep else []) + [inst]
  return Message(message.role, tuple(parts))
