"""Where generated text or tokens end: stop token ids and stop strings (pure, host side)."""

from __future__ import annotations

from typing import Sequence


def first_stop_string(text: str, stop_strings: Sequence[str]) -> int | None:
  """Index of the earliest occurrence of any stop string in `text`, or None."""
  hits = [i for i in (text.find(s) for s in stop_strings if s) if i >= 0]
  return min(hits) if hits else None


def cut_at_stop_string(text: str, stop_strings: Sequence[str]) -> tuple[str, bool]:
  """(text before the first stop string, whether one was found)."""
  index = first_stop_string(text, stop_strings)
  return (text, False) if index is None else (text[:index], True)


def cut_at_stop_token(tokens: Sequence[int], stop_token_ids: Sequence[int]) -> tuple[list[int], bool]:
  """(tokens before the first stop id, whether one was found)."""
  stops = set(stop_token_ids)
  for i, token in enumerate(tokens):
    if token in stops:
      return list(tokens[:i]), True
  return list(tokens), False
