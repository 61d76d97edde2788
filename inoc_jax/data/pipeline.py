"""Tokenised examples -> fixed-shape batches, per host, resumable.

Each epoch is a seeded permutation of the examples; host `i` of `n` reads
positions i, i+n, i+2n, ... of it (disjoint shares whose union is the epoch).
Rows have a fixed length so the train step never retraces: one example per
row (right-padded), or several packed per row with their own segment ids and
positions restarting at 0. The iterator state (epoch, position) is a small
dict that the checkpoint stores, so training resumes at the exact next example.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import jax
import numpy as np

from inoc_jax.data.conversation import Example
from inoc_jax.errors import DataError
from inoc_jax.training.masking import supervised_token_counts


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
  example_id: str
  ids: np.ndarray    # int32 [n]
  roles: np.ndarray  # int8 [n]


@dataclasses.dataclass
class DropCounts:
  too_long: int = 0
  no_supervised_tokens: int = 0

  def summary(self) -> str:
    return f"dropped {self.too_long} too long, {self.no_supervised_tokens} with no supervised token"


def tokenize_examples(examples: Sequence[Example], encoder, seq_len: int, train_on: str
                      ) -> tuple[list[TokenizedExample], DropCounts]:
  """Encodes each conversation; an example longer than seq_len is dropped and counted, never cut."""
  kept, drops = [], DropCounts()
  for example in examples:
    encoded = encoder.encode(example.messages)
    if len(encoded.ids) > seq_len:
      drops.too_long += 1
      continue
    segments = np.ones((1, len(encoded.ids)), np.int32)
    if supervised_token_counts(encoded.roles[None], segments, train_on)[0] == 0:
      drops.no_supervised_tokens += 1
      continue
    kept.append(TokenizedExample(example.example_id, encoded.ids, encoded.roles))
  return kept, drops


class BatchIterator:
  """Infinite iterator of host-local numpy batches.

  Each batch: tokens, roles, segment_ids, positions (int32 [rows, seq_len]) and
  example_ids (object [rows, max_examples_per_row], '' where empty; host only).
  """

  def __init__(self, examples: Sequence[TokenizedExample], *, global_batch_size: int, seq_len: int, seed: int,
               shuffle: bool = True, packing: bool = False, process_index: int = 0, process_count: int = 1):
    if global_batch_size % process_count:
      raise DataError(f"global batch {global_batch_size} is not divisible by {process_count} hosts; "
                      "change data.global_batch_size.")
    self.examples = list(examples)
    self.rows = global_batch_size // process_count
    self.seq_len, self.seed, self.shuffle, self.packing = seq_len, seed, shuffle, packing
    self.process_index, self.process_count = process_index, process_count
    self.share_size = len(self.examples) // process_count
    if self.share_size == 0:
      raise DataError(f"{len(self.examples)} examples cannot be split over {process_count} hosts; add data.")
    self.epoch, self.position = 0, 0

  # -- state ---------------------------------------------------------------
  def get_state(self) -> dict[str, int]:
    return {"epoch": self.epoch, "position": self.position}

  def set_state(self, state: dict[str, int]) -> None:
    self.epoch, self.position = int(state["epoch"]), int(state["position"])

  # -- iteration -----------------------------------------------------------
  def _share(self, epoch: int) -> np.ndarray:
    order = np.arange(len(self.examples))
    if self.shuffle:
      order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
    return order[self.process_index::self.process_count][:self.share_size]

  def _next_example(self) -> TokenizedExample:
    if self.position >= self.share_size:
      self.epoch, self.position = self.epoch + 1, 0
    index = self._share(self.epoch)[self.position]
    self.position += 1
    return self.examples[index]

  def _peek_fits(self, used: int) -> bool:
    if self.position >= self.share_size:
      return False  # packing never crosses an epoch boundary
    index = self._share(self.epoch)[self.position]
    return used + len(self.examples[index].ids) <= self.seq_len

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    rows = [self._next_row() for _ in range(self.rows)]
    width = max(len(r) for r in rows)
    batch = {key: np.zeros((self.rows, self.seq_len), np.int32)
             for key in ("tokens", "roles", "segment_ids", "positions")}
    batch["example_ids"] = np.full((self.rows, width), "", dtype=object)
    for r, row in enumerate(rows):
      cursor = 0
      for segment, example in enumerate(row, start=1):
        n = len(example.ids)
        span = slice(cursor, cursor + n)
        batch["tokens"][r, span] = example.ids
        batch["roles"][r, span] = example.roles
        batch["segment_ids"][r, span] = segment
        batch["positions"][r, span] = np.arange(n)
        batch["example_ids"][r, segment - 1] = example.example_id
        cursor += n
    return batch

  def _next_row(self) -> list[TokenizedExample]:
    row = [self._next_example()]
    if self.packing:
      used = len(row[0].ids)
      while self._peek_fits(used):
        row.append(self._next_example())
        used += len(row[-1].ids)
    return row

  def batches_per_epoch(self) -> int:
    """Batches one epoch yields on this host (simulates packing from a fresh state)."""
    if not self.packing:
      return max(self.share_size // self.rows, 1)
    saved = self.get_state()
    self.set_state({"epoch": 0, "position": 0})
    rows = 0
    while self.epoch == 0 and self.position < self.share_size:
      self._next_row()
      rows += 1
    self.set_state(saved)
    return max(rows // self.rows, 1)


def to_global_batch(local_batch: dict[str, np.ndarray], sharding: jax.sharding.Sharding,
                    keys: Sequence[str]) -> dict[str, jax.Array]:
  """Assembles the global batch from every host's local rows."""
  return {key: jax.make_array_from_process_local_data(sharding, local_batch[key]) for key in keys}
