"""Conversation -> token ids + a role id per token.

`PlainChatEncoder` is the template of random-init byte-level models:

  <|user|>\n{content}<end-of-turn>\n<|assistant|>\n{content}<end-of-turn><eos>

Header text takes its message's role; the assistant's closing end-of-turn and
eos are supervised (ASSISTANT), like the paper's Gemma labels that include
`<end_of_turn>\n<eos>`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from inoc_jax.data.conversation import MESSAGE_ROLES, Message
from inoc_jax.data.roles import Role
from inoc_jax.data.tokenizer import ByteTokenizer


@dataclasses.dataclass(frozen=True)
class EncodedConversation:
  """ids: int32 [n]; roles: int8 [n] (Role values)."""

  ids: np.ndarray
  roles: np.ndarray


class PlainChatEncoder:
  """The byte-level template above; `stop_token_ids` end an assistant turn when sampling."""

  def __init__(self, tokenizer: ByteTokenizer):
    self.tokenizer = tokenizer
    self.stop_token_ids = (tokenizer.end_of_turn_id, tokenizer.eos_id)

  def encode(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> EncodedConversation:
    tok = self.tokenizer
    ids: list[int] = [tok.bos_id]
    roles: list[int] = [Role.USER if messages and messages[0].role == "user" else Role.SYSTEM]

    def add_text(text: str, role: Role):
      piece = tok.encode(text)
      ids.extend(piece)
      roles.extend([role] * len(piece))

    for message in messages:
      turn_role = MESSAGE_ROLES[message.role]
      add_text(f"<|{message.role}|>\n", Role.USER if turn_role == Role.ASSISTANT else turn_role)
      for segment in message.segments:
        add_text(segment.text, segment.role)
      ids.append(tok.end_of_turn_id)
      roles.append(turn_role)
      if message.role == "assistant":
        ids.append(tok.eos_id)
        roles.append(Role.ASSISTANT)
      else:
        add_text("\n", turn_role)
    if add_generation_prompt:
      add_text("<|assistant|>\n", Role.USER)
    return EncodedConversation(np.asarray(ids, np.int32), np.asarray(roles, np.int8))
