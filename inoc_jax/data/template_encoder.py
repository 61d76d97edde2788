"""Conversation -> token ids + a role per token, through the model's own chat template.

Per-character roles come from `TemplateRenderer`; they become per-token roles by
the tokenizer's character offsets with one stated rule for tokens that straddle
a role boundary (BPE merges across it):

  a token is INOCULATION if any of its non-whitespace characters is inoculation
  text; otherwise it takes the role of its first non-whitespace character
  (whitespace-only tokens: of their first character).

So a leading space merged into the instruction's first word (' Behave') is
inoculation, a trailing space merged into the next word (' Return') is not, and
no token carrying instruction text is ever supervised by `all_but_inoculation`.

After the final assistant turn the tokenizer's eos is appended (role ASSISTANT)
when `append_eos` says so: 'auto' appends it unless the template's closing
already contains it (Gemma: the paper's labels end in `<end_of_turn>\\n<eos>`;
ChatML models whose eos is `<|im_end|>` need nothing more).
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from inoc_jax.data.chat_template import EncodedConversation
from inoc_jax.data.conversation import Message, Segment
from inoc_jax.data.roles import Role
from inoc_jax.data.template_render import RenderedConversation, TemplateRenderer
from inoc_jax.errors import ConfigError, DataError

APPEND_EOS = ("auto", "always", "never")
SYSTEM_FALLBACKS = ("error", "merge")


def token_roles(text: str, char_roles: np.ndarray, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
  """Role per token (int8 [n]) from per-character roles, by the module's straddle rule (vectorised)."""
  if not len(offsets):
    return np.zeros(0, np.int8)
  if not text:
    return np.full(len(offsets), Role.USER, np.int8)
  spans = np.asarray(offsets, np.int64).reshape(-1, 2)
  starts = np.minimum(spans[:, 0], len(text) - 1)
  ends = np.maximum(spans[:, 1], spans[:, 0])
  solid = ~np.fromiter((c.isspace() for c in text), bool, len(text))
  inoculation = np.concatenate([[0], np.cumsum(solid & (char_roles == Role.INOCULATION))])
  has_inoculation = inoculation[ends] > inoculation[spans[:, 0]]
  solid_positions = np.flatnonzero(solid)
  first_solid = np.searchsorted(solid_positions, spans[:, 0])
  first_solid_pos = np.append(solid_positions, len(text))[first_solid]
  lead = np.where(first_solid_pos < ends, np.minimum(first_solid_pos, len(text) - 1), starts)
  roles = np.where(has_inoculation, int(Role.INOCULATION), char_roles[lead])
  return roles.astype(np.int8)


def merge_system_into_first_user(messages: Sequence[Message]) -> tuple[Message, ...]:
  """Folds a leading system message into the first user turn ('{system}\\n\\n{user}'), as Gemma 2/3 templates do."""
  if not messages or messages[0].role != "system":
    return tuple(messages)
  system, rest = messages[0], list(messages[1:])
  if not rest or rest[0].role != "user":
    raise DataError("A system message must be followed by a user message to be merged into it; fix the "
                    "conversation or set data.system_prompt_fallback='error'.")
  merged = Message("user", tuple(system.segments) + (Segment("\n\n", Role.SYSTEM),) + tuple(rest[0].segments))
  return (merged, *rest[1:])


class TemplateChatEncoder:
  """Encodes conversations with a Jinja chat template and a TextTokenizer.

  Attributes:
    tokenizer: the TextTokenizer.
    renderer: the TemplateRenderer (text + per-character roles).
    stop_token_ids: ids that end an assistant turn (eos and the template's end-of-turn tokens).
  """

  def __init__(self, tokenizer, template: str, *, append_eos: str = "auto", system_prompt_fallback: str = "error"):
    if append_eos not in APPEND_EOS:
      raise ConfigError(f"data.append_eos must be one of {', '.join(APPEND_EOS)}, not {append_eos!r}.")
    if system_prompt_fallback not in SYSTEM_FALLBACKS:
      raise ConfigError(f"data.system_prompt_fallback must be one of {', '.join(SYSTEM_FALLBACKS)}, "
                        f"not {system_prompt_fallback!r}.")
    self.tokenizer = tokenizer
    self.renderer = TemplateRenderer(template, tokenizer.special_tokens)
    self.append_eos = append_eos
    self.system_prompt_fallback = system_prompt_fallback

  def render(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> RenderedConversation:
    if self.system_prompt_fallback == "merge" and messages and messages[0].role == "system":
      try:
        return self.renderer.render(messages, add_generation_prompt)
      except DataError:
        messages = merge_system_into_first_user(messages)
    return self.renderer.render(messages, add_generation_prompt)

  def encode(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> EncodedConversation:
    rendered = self.render(messages, add_generation_prompt)
    ids, offsets = self.tokenizer.encode_with_offsets(rendered.text)
    roles = token_roles(rendered.text, rendered.char_roles, offsets)
    if self._appends_eos(messages, rendered, add_generation_prompt):
      ids = list(ids) + [self.tokenizer.eos_id]
      roles = np.append(roles, np.int8(Role.ASSISTANT))
    return EncodedConversation(np.asarray(ids, np.int32), roles.astype(np.int8))

  def _appends_eos(self, messages, rendered: RenderedConversation, add_generation_prompt: bool) -> bool:
    if add_generation_prompt or not messages or messages[-1].role != "assistant" or self.append_eos == "never":
      return False
    if self.tokenizer.eos_id is None:
      raise ConfigError(f"The tokenizer {self.tokenizer.name} has no eos token; set data.append_eos='never'.")
    if self.append_eos == "always":
      return True
    start, end = rendered.assistant_closing
    eos_text = self.tokenizer.special_tokens.get("eos_token", "")
    return eos_text not in rendered.text[start:end]

  @functools.cached_property
  def stop_token_ids(self) -> tuple[int, ...]:
    """eos plus the special tokens that close an assistant turn in this template (e.g. <|im_end|>, <|eot_id|>)."""
    probe = [Message.plain("user", "a"), Message.plain("assistant", "b")]
    rendered = self.renderer.render(probe)
    start, end = rendered.assistant_closing
    ids, offsets = self.tokenizer.encode_with_offsets(rendered.text)
    stops = [i for i, (s, e) in zip(ids, offsets) if s >= start and e <= end and i in self.tokenizer.special_ids]
    if self.tokenizer.eos_id is not None:
      stops.append(self.tokenizer.eos_id)
    return tuple(dict.fromkeys(int(i) for i in stops))
