"""Host-side batching: prompt-length buckets and left-padded, fixed-shape batches.

Every batch has the same number of rows and a bucketed prompt width, so the
compiled prefill and decode loop are reused across batches: one compilation
per bucket. Prompts are left-padded (padding has segment id 0 and position
0) and positions count from each prompt's first real token, which is what the
model's mask rule and HF `generate` with a left-padded attention mask both do.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from inoc_jax.errors import DataError


def bucket_widths(max_prompt_len: int, min_width: int = 16) -> tuple[int, ...]:
  """Powers of two from `min_width`, the last one at least `max_prompt_len`.

  >>> bucket_widths(100, 16)
  (16, 32, 64, 128)
  """
  widths = [max(1, min_width)]
  while widths[-1] < max_prompt_len:
    widths.append(widths[-1] * 2)
  return tuple(widths)


def bucket_for(length: int, widths: Sequence[int]) -> int:
  for width in widths:
    if length <= width:
      return width
  raise DataError(f"A prompt of {length} tokens is longer than the largest bucket ({widths[-1]} tokens); raise "
                  "the sampler's max_prompt_len (eval.max_prompt_len) or shorten the prompt.")


@dataclasses.dataclass(frozen=True)
class PromptBatch:
  """One fixed-shape batch of (prompt, sample) rows.

  Attributes:
    width: bucket width W (prompt tokens per row, left-padded).
    tokens, positions, segment_ids: int32 [B, W]; empty rows are all zeros.
    prompt_lengths: int32 [B] real prompt tokens per row (0 for empty rows).
    prompt_index, sample_index: int32 [B] which request each row serves (-1 if empty).
    num_rows: rows that serve a request (the first num_rows rows).
  """

  width: int
  tokens: np.ndarray
  positions: np.ndarray
  segment_ids: np.ndarray
  prompt_lengths: np.ndarray
  prompt_index: np.ndarray
  sample_index: np.ndarray
  num_rows: int


def left_padded_batch(prompts: Sequence[Sequence[int]], rows: Sequence[tuple[int, int]], width: int,
                      batch_size: int) -> PromptBatch:
  """Builds one batch from `rows` = [(prompt_index, sample_index)] (at most batch_size)."""
  tokens = np.zeros((batch_size, width), np.int32)
  positions = np.zeros((batch_size, width), np.int32)
  segments = np.zeros((batch_size, width), np.int32)
  lengths = np.zeros((batch_size,), np.int32)
  prompt_index = np.full((batch_size,), -1, np.int32)
  sample_index = np.full((batch_size,), -1, np.int32)
  for r, (p, s) in enumerate(rows):
    ids = np.asarray(prompts[p], np.int32)
    n = len(ids)
    if n == 0:
      raise DataError(f"Prompt {p} is empty; every prompt needs at least one token (e.g. the chat template's BOS).")
    tokens[r, width - n:] = ids
    positions[r, width - n:] = np.arange(n)
    segments[r, width - n:] = 1
    lengths[r], prompt_index[r], sample_index[r] = n, p, s
  return PromptBatch(width, tokens, positions, segments, lengths, prompt_index, sample_index, len(rows))


def batch_rows(requests: int, batch_size: int, multiple: int = 1) -> int:
  """Rows of the batches serving `requests` requests: batch_size, or the next power of two
  (a multiple of `multiple`) when fewer requests would leave most rows empty.

  >>> batch_rows(3, 32), batch_rows(100, 32), batch_rows(1, 32, multiple=4)
  (4, 32, 4)
  """
  rows = 1
  while rows < requests:
    rows *= 2
  rows = -(-max(rows, multiple) // multiple) * multiple
  return min(rows, batch_size)


def plan_batches(prompts: Sequence[Sequence[int]], num_samples: int, batch_size: int, widths: Sequence[int],
                 multiple: int = 1) -> list[tuple[int, int, list[tuple[int, int]]]]:
  """Groups every (prompt, sample) request into [(width, batch rows, requests)] batches.

  Requests are grouped by bucket (short prompts are not padded to the longest
  one) and kept in prompt order inside a bucket. All batches of a bucket have
  the same number of rows (batch_rows), so the last, partial one reuses their
  compilation; its empty rows are padding.
  """
  by_width: dict[int, list[tuple[int, int]]] = {}
  for p, prompt in enumerate(prompts):
    width = bucket_for(len(prompt), widths)
    by_width.setdefault(width, []).extend((p, s) for s in range(num_samples))
  plan = []
  for width in sorted(by_width):
    requests = by_width[width]
    rows = batch_rows(len(requests), batch_size, multiple)
    plan.extend((width, rows, requests[i:i + rows]) for i in range(0, len(requests), rows))
  return plan
