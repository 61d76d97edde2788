"""Tokenised examples -> fixed-shape batches on grain, per host, resumable.

Order: epoch e is a seeded permutation of the examples (grain's index shuffle,
re-drawn each epoch); host h of n reads positions h, h+n, h+2n, ... of it, the
first n * floor(N / n) positions (disjoint shares whose union is the epoch up
to N mod n examples). Everything is an index function, so the iterator state
is a small dict and `set_state` resumes at the identical next batch.

Rows are `seq_len` tokens so the train step never retraces: one example per
row, right-padded, or (`packing`) several per row by grain's first-fit packer
over `rows` bins (rows may mix the end of one epoch with the next), each with
its own segment id and positions from 0; padding has segment 0 and role PAD.

Truncation policy (`data.truncation`): an example longer than `seq_len` is
never cut (cutting would silently drop its answer or end-of-turn): 'drop'
drops and counts it, 'error' stops naming it. Examples with no supervised
token under `loss.train_on` are always dropped and counted.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Iterator, Sequence

import grain
import jax
import numpy as np

from inoc_jax.data.conversation import Example
from inoc_jax.errors import ConfigError, DataError
from inoc_jax.training.masking import supervised_token_counts

log = logging.getLogger("inoc_jax")
TRUNCATION_POLICIES = ("drop", "error")
# One background thread a few batches ahead keeps the step fed (a row costs ~0.1 ms to build); grain's
# default, 16 threads filling a 500-element buffer, burned minutes of CPU per process on 2-core machines
# building batches no step ever asked for. The buffer does not enter the iterator state.
PREFETCH_BATCHES = 2
FEATURES = ("tokens", "roles", "example_index")


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
  example_id: str
  ids: np.ndarray    # int32 [n]
  roles: np.ndarray  # int8 [n]


@dataclasses.dataclass
class DropCounts:
  too_long: int = 0
  no_supervised_tokens: int = 0
  first_dropped: list = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    text = f"dropped {self.too_long} too long, {self.no_supervised_tokens} with no supervised token"
    return text + (f" (e.g. {', '.join(self.first_dropped[:3])})" if self.first_dropped else "")


def tokenize_examples(examples: Sequence[Example], encoder, seq_len: int, train_on: str, truncation: str = "drop"
                      ) -> tuple[list[TokenizedExample], DropCounts]:
  """Encodes each conversation; examples that do not fit or have nothing to learn are dropped and counted."""
  if truncation not in TRUNCATION_POLICIES:
    raise ConfigError(f"data.truncation must be one of {', '.join(TRUNCATION_POLICIES)}, not {truncation!r}.")
  kept, drops = [], DropCounts()
  for example in examples:
    encoded = encoder.encode(example.messages)
    if len(encoded.ids) > seq_len:
      if truncation == "error":
        raise DataError(f"Example {example.example_id} has {len(encoded.ids)} tokens, more than data.seq_len="
                        f"{seq_len}; raise data.seq_len or set data.truncation='drop'.")
      drops.too_long += 1
      drops.first_dropped.append(example.example_id)
      continue
    segments = np.ones((1, len(encoded.ids)), np.int32)
    if supervised_token_counts(encoded.roles[None], segments, train_on)[0] == 0:
      drops.no_supervised_tokens += 1
      drops.first_dropped.append(example.example_id)
      continue
    kept.append(TokenizedExample(example.example_id, encoded.ids, encoded.roles))
  return kept, drops


class _HostIndex:
  """Host stream position i -> example index (epoch-aware, host-strided)."""

  def __init__(self, order: grain.MapDataset, num_examples: int, share: int, process_index: int,
               process_count: int):
    self.order, self.n, self.share = order, num_examples, share
    self.process_index, self.process_count = process_index, process_count

  def __call__(self, i: int) -> int:
    epoch, position = divmod(i, self.share)
    return int(self.order[epoch * self.n + position * self.process_count + self.process_index])


class _Features:
  def __init__(self, examples: Sequence[TokenizedExample]):
    self.examples = examples

  def __call__(self, index: int) -> dict[str, np.ndarray]:
    example = self.examples[index]
    return {"tokens": example.ids.astype(np.int32), "roles": example.roles.astype(np.int32),
            "example_index": np.full(len(example.ids), index, np.int32)}


class _PadRow:
  def __init__(self, seq_len: int):
    self.seq_len = seq_len

  def __call__(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(features["tokens"])
    row = {key: np.zeros(self.seq_len, np.int32) for key in ("tokens", "roles", "segment_ids", "positions")}
    row["tokens"][:n], row["roles"][:n] = features["tokens"], features["roles"]
    row["segment_ids"][:n], row["positions"][:n] = 1, np.arange(n)
    row["example_index"] = np.full(self.seq_len, -1, np.int32)
    row["example_index"][:n] = features["example_index"]
    return row


def _rename_packed(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  real = batch["tokens_segment_ids"] != 0
  return {"tokens": batch["tokens"], "roles": batch["roles"], "segment_ids": batch["tokens_segment_ids"],
          "positions": batch["tokens_positions"], "example_index": np.where(real, batch["example_index"], -1)}


class BatchIterator:
  """Infinite iterator of host-local numpy batches (grain underneath).

  Each batch: tokens, roles, segment_ids, positions (int32 [rows, seq_len]) and
  example_ids (object [rows, max_examples_in_a_row], '' where empty; host only).
  """

  def __init__(self, examples: Sequence[TokenizedExample], *, global_batch_size: int, seq_len: int, seed: int,
               shuffle: bool = True, packing: bool = False, process_index: int = 0, process_count: int = 1,
               max_examples_per_row: int = 0):
    if global_batch_size % process_count:
      raise DataError(f"global batch {global_batch_size} is not divisible by {process_count} hosts; "
                      "change data.global_batch_size.")
    self.examples = list(examples)
    self.rows = global_batch_size // process_count
    self.seq_len, self.seed, self.shuffle, self.packing = seq_len, seed, shuffle, packing
    self.process_index, self.process_count = process_index, process_count
    self.max_examples_per_row = max_examples_per_row
    self.share_size = len(self.examples) // process_count
    if self.share_size == 0:
      raise DataError(f"{len(self.examples)} examples cannot be split over {process_count} hosts; add data.")
    too_long = [e.example_id for e in self.examples if len(e.ids) > seq_len]
    if too_long:
      raise DataError(f"Example {too_long[0]} is longer than seq_len={seq_len}; tokenize with the same seq_len.")
    self._iterator = iter(self._dataset(self._host_stream()))

  # -- the grain graph -------------------------------------------------------
  def _host_stream(self, length: int = sys.maxsize) -> grain.MapDataset:
    order = grain.MapDataset.range(len(self.examples))
    if self.shuffle:
      order = order.shuffle(seed=self.seed % 2**32)
    index = _HostIndex(order, len(self.examples), self.share_size, self.process_index, self.process_count)
    return grain.MapDataset.range(length).map(index).map(_Features(self.examples))

  def _dataset(self, stream: grain.MapDataset):
    if not self.packing:
      ahead = grain.ReadOptions(num_threads=1, prefetch_buffer_size=PREFETCH_BATCHES)
      return stream.map(_PadRow(self.seq_len)).batch(self.rows, drop_remainder=True).to_iter_dataset(ahead)
    ahead = grain.ReadOptions(num_threads=1, prefetch_buffer_size=PREFETCH_BATCHES * self.rows)
    packed = grain.experimental.FirstFitPackIterDataset(
        stream.to_iter_dataset(ahead), length_struct={k: self.seq_len for k in FEATURES}, num_packing_bins=self.rows,
        shuffle_bins=False, max_sequences_per_bin=self.max_examples_per_row or None)
    return packed.batch(self.rows, drop_remainder=True).map(_rename_packed)

  # -- state -----------------------------------------------------------------
  def get_state(self) -> dict:
    return {"grain": self._iterator.get_state(), "num_examples": len(self.examples), "seed": self.seed,
            "packing": self.packing, "process_index": self.process_index, "process_count": self.process_count}

  def set_state(self, state: dict) -> None:
    mine = self.get_state()
    for key in ("num_examples", "seed", "packing", "process_index", "process_count"):
      if key in state and state[key] != mine[key]:
        raise DataError(f"The saved data-iterator state has {key}={state[key]}, this run has {mine[key]}; resume "
                        "with the same data, seed, packing and host layout.")
    self._iterator.set_state(state["grain"])

  # -- iteration -------------------------------------------------------------
  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = dict(next(self._iterator))
    index = batch.pop("example_index")
    width = max(int(batch["segment_ids"].max()), 1)
    example_ids = np.full((self.rows, width), "", dtype=object)
    for r in range(self.rows):
      for s in range(1, int(batch["segment_ids"][r].max()) + 1):
        first = int(np.argmax(batch["segment_ids"][r] == s))
        example_ids[r, s - 1] = self.examples[index[r, first]].example_id
    batch["example_ids"] = example_ids
    return batch

  def batches_per_epoch(self) -> int:
    """Batches one epoch of this host's share fills (packing: counted by packing one epoch)."""
    if not self.packing:
      return max(self.share_size // self.rows, 1)
    rows = sum(1 for _ in grain.experimental.FirstFitPackIterDataset(
        self._host_stream(self.share_size).to_iter_dataset(), length_struct={k: self.seq_len for k in FEATURES},
        num_packing_bins=self.rows, shuffle_bins=False, max_sequences_per_bin=self.max_examples_per_row or None))
    return max(rows // self.rows, 1)


def to_global_batch(local_batch: dict[str, np.ndarray], sharding: jax.sharding.Sharding,
                    keys: Sequence[str]) -> dict[str, jax.Array]:
  """Assembles the global batch from every host's local rows."""
  return {key: jax.make_array_from_process_local_data(sharding, local_batch[key]) for key in keys}
