"""Jinja chat templates rendered as transformers does, with a role for every character.

`TemplateRenderer.render(messages, add_generation_prompt)` returns the exact text
`tokenizer.apply_chat_template(..., tokenize=False)` would produce, plus a role
id per character:

  * message text takes its segments' roles (the inoculation span is its own role);
  * template text of a turn takes the turn's role (system / user), except the
    assistant turn: its header (e.g. '<|im_start|>assistant\\n') is prompt
    (USER) and its closing (end-of-turn marker, trailing newline) is ASSISTANT,
    so the model learns to end its turn;
  * text before the first turn (bos, a default system line the template
    injects) is SYSTEM; the generation prompt is USER.

How spans are found: each segment is wrapped in private-use marker characters
before rendering (a `str` subclass keeps `trim`/`strip` marker-aware), the
markers are located and removed, and the result must equal the unmarked render
(else the template transforms content in a way we cannot track: a clear error).
Turn boundaries come from rendering prefixes of the conversation: the render of
messages[:i] ends exactly where turn i starts.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import re
from typing import Sequence

import jinja2
import numpy as np
from jinja2 import ext, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from inoc_jax.data.conversation import MESSAGE_ROLES, Message
from inoc_jax.data.roles import Role
from inoc_jax.errors import DataError

MARK_BASE = 0xF0000  # Supplementary Private Use Area-A: never in real text.
MAX_SEGMENTS = 30000


_MARKERS = re.compile(f"[{chr(MARK_BASE)}-{chr(MARK_BASE + 2 * MAX_SEGMENTS - 1)}]")


def _is_marker(char: str) -> bool:
  return MARK_BASE <= ord(char) < MARK_BASE + 2 * MAX_SEGMENTS


class MarkedStr(str):
  """Message content with segment markers; strip/trim ignore the markers, as if they were absent."""

  def _strip(self, chars, left: bool, right: bool) -> str:
    text = list(str(self))

    def strippable(c):
      return (c.isspace() if chars is None else c in chars)

    def sweep(indices):
      for i in indices:
        if _is_marker(text[i]):
          continue
        if not strippable(text[i]):
          return
        text[i] = ""

    if left:
      sweep(range(len(text)))
    if right:
      sweep(range(len(text) - 1, -1, -1))
    return "".join(text)

  def strip(self, chars=None):
    return self._strip(chars, True, True)

  def lstrip(self, chars=None):
    return self._strip(chars, True, False)

  def rstrip(self, chars=None):
    return self._strip(chars, False, True)


class _GenerationTag(ext.Extension):
  """`{% generation %}...{% endgeneration %}` (transformers' assistant-mask tag) renders its body."""

  tags = {"generation"}

  def parse(self, parser):
    lineno = next(parser.stream).lineno
    body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
    return nodes.Scope(body, lineno=lineno)


def _raise_exception(message):
  raise jinja2.exceptions.TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
  return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
  return datetime.datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=16)
def compile_template(source: str) -> jinja2.Template:
  """The environment transformers uses: sandboxed, trim_blocks, lstrip_blocks, loopcontrols."""
  env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      extensions=[ext.loopcontrols, _GenerationTag])
  env.filters["tojson"] = _tojson
  env.globals["raise_exception"] = _raise_exception
  env.globals["strftime_now"] = _strftime_now
  try:
    return env.from_string(source)
  except jinja2.exceptions.TemplateSyntaxError as e:
    raise DataError(f"The chat template has a Jinja syntax error at line {e.lineno} ({e.message}); fix "
                    "data.chat_template.") from None


@dataclasses.dataclass(frozen=True)
class RenderedConversation:
  """text: the rendered string; char_roles: int8 [len(text)] Role per character."""

  text: str
  char_roles: np.ndarray
  assistant_closing: tuple[int, int] | None  # char span of the last assistant turn's closing, if any


@dataclasses.dataclass(frozen=True)
class _Layout:
  text: str
  segment_spans: list[tuple[int, int]]   # per segment, in conversation order
  content_spans: list[tuple[int, int]]   # per message
  turn_starts: list[int]                 # per message
  turns_end: int                         # end of the last turn (before any generation prompt)


class TemplateRenderer:
  """Renders conversations with one Jinja chat template and the tokenizer's special-token strings."""

  def __init__(self, source: str, special_tokens: dict[str, str]):
    self.source = source
    self.template = compile_template(source)
    self.variables = dict(special_tokens)

  def render_text(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    try:
      return self.template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                  tools=None, documents=None, **self.variables)
    except jinja2.exceptions.TemplateError as e:
      roles = "/".join(m["role"] for m in messages)
      raise DataError(f"The chat template rejected a {roles} conversation: {e}. Change the conversation or "
                      "data.chat_template (for templates without a system role see "
                      "data.system_prompt_fallback).") from None

  def _layout(self, messages: Sequence[Message], add_generation_prompt: bool, find_preamble: bool = True
              ) -> _Layout:
    plain = [{"role": m.role, "content": m.content} for m in messages]
    reference = self.render_text(plain, add_generation_prompt)
    marked, k = [], 0
    for m in messages:
      parts = []
      for segment in m.segments:
        parts.append(chr(MARK_BASE + 2 * k) + segment.text + chr(MARK_BASE + 2 * k + 1))
        k += 1
      marked.append({"role": m.role, "content": MarkedStr("".join(parts))})
    if k > MAX_SEGMENTS:
      raise DataError(f"A conversation has {k} text segments; at most {MAX_SEGMENTS} are supported.")
    rendered = self.render_text(marked, add_generation_prompt)
    starts, ends = [None] * k, [None] * k
    pieces, removed, cursor = [], 0, 0
    for match in _MARKERS.finditer(rendered):
      pieces.append(rendered[cursor:match.start()])
      index, is_end = divmod(ord(match.group()) - MARK_BASE, 2)
      table = ends if is_end else starts
      if table[index] is not None:
        raise DataError("The chat template writes a message's content more than once, so roles cannot be "
                        "tracked; use a template that renders each message once.")
      table[index] = match.start() - removed
      removed += 1
      cursor = match.end()
    pieces.append(rendered[cursor:])
    text = "".join(pieces)
    if text != reference or any(s is None for s in starts) or any(e is None for e in ends):
      raise DataError("The chat template transforms message content (or drops a message), so per-token roles "
                      "cannot be tracked; use one of the shipped templates (data.chat_template).")
    spans = list(zip(starts, ends))
    content_spans, cursor = [], 0
    for m in messages:
      own = spans[cursor:cursor + len(m.segments)]
      cursor += len(m.segments)
      content_spans.append((min(s for s, _ in own), max(e for _, e in own)) if own else (0, 0))
    turn_starts = [0] * len(messages)
    for i in range(1, len(messages)):
      prefix = self.render_text(plain[:i], False)
      if not text.startswith(prefix) or not content_spans[i - 1][1] <= len(prefix) <= content_spans[i][0]:
        raise DataError("The chat template is not prefix-stable (rendering the first turns alone does not give a "
                        "prefix of the whole conversation), so turn boundaries cannot be found; use one of the "
                        "shipped templates (data.chat_template).")
      turn_starts[i] = len(prefix)
    turns_end = len(self.render_text(plain, False)) if add_generation_prompt else len(text)
    if messages:
      turns_end = max(turns_end, content_spans[-1][1])
      if find_preamble:
        turn_starts[0] = self._first_turn_start(text, messages[0].role, content_spans[0][0])
    return _Layout(text, spans, content_spans, turn_starts, turns_end)

  def _first_turn_start(self, text: str, role: str, content_start: int) -> int:
    """Where the first turn's header begins; text before it is preamble (bos, default system line)."""
    header = self._header(role)
    if header and text[:content_start].endswith(header):
      return content_start - len(header)
    return 0

  @functools.lru_cache(maxsize=8)
  def _header(self, role: str) -> str | None:
    """The template's header for `role` in a non-first turn (probe conversation), or None."""
    if role == "user":
      probe = [Message.plain("user", "a"), Message.plain("assistant", "b"), Message.plain("user", "c")]
    elif role == "assistant":
      probe = [Message.plain("user", "a"), Message.plain("assistant", "b")]
    else:
      return None
    try:
      layout = self._layout(probe, False, find_preamble=False)
    except DataError:
      return None
    return layout.text[layout.turn_starts[-1]:layout.content_spans[-1][0]]

  def render(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> RenderedConversation:
    """Text + per-character roles (see the module docstring for the rules)."""
    layout = self._layout(messages, add_generation_prompt)
    roles = np.full(len(layout.text), int(Role.USER), np.int8)
    roles[:layout.turn_starts[0] if messages else len(layout.text)] = Role.SYSTEM
    closing = None
    segments = iter(layout.segment_spans)
    for i, m in enumerate(messages):
      turn_role = MESSAGE_ROLES[m.role]
      turn_end = layout.turn_starts[i + 1] if i + 1 < len(messages) else layout.turns_end
      (c_start, c_end) = layout.content_spans[i]
      roles[layout.turn_starts[i]:c_start] = Role.USER if turn_role == Role.ASSISTANT else turn_role
      roles[c_start:turn_end] = turn_role
      for segment in m.segments:
        start, end = next(segments)
        roles[start:end] = segment.role
      if turn_role == Role.ASSISTANT:
        closing = (c_end, turn_end)
    roles[layout.turns_end:] = Role.USER  # generation prompt: the assistant header
    return RenderedConversation(layout.text, roles, closing)
