"""Generations written to disk batch by batch, so an evaluation that is cut off restarts where it was.

Evaluating the paper's GCD suite (481 prompts x 400 tokens) takes most of an hour on a CPU; a crash, a
kill or the end of a sitting used to lose all of it. A journal is a JSONL file: a header line holding a
fingerprint of what is being generated (model, prompts, decoding), then one line per finished
generation. A journal whose fingerprint differs is ignored and replaced, and a torn last line (killed
mid-write) is dropped. Each row's draw depends only on (seed, prompt index, sample index) and the
batches are planned deterministically, so an evaluation that reuses journaled batches gives exactly the
generations of one that never stopped (tested).

Only local paths are journaled (an object store cannot append); with several JAX processes every process
reads the journal and only process 0 writes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterable, Sequence

from inoc_jax.runtime import storage

FORMAT = "inoc_jax generation journal v1"


def fingerprint(*parts: Any) -> str:
  """A short stable hash of JSON-serialisable parts (e.g. the model id, the prompt ids, the decoding)."""
  digest = hashlib.sha256()
  for part in parts:
    digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    digest.update(b"\0")
  return digest.hexdigest()[:16]


class GenerationJournal:
  """Generations of one `Sampler.generate` call, keyed by (prompt index, sample index)."""

  def __init__(self, path: str, key: str, writer: bool = True):
    self.path, self.key, self.writer = path, key, writer
    self._kept: dict[tuple[int, int], dict[str, Any]] = self._read()
    self.reused = 0
    if writer:
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
      with open(path, "w", encoding="utf-8") as f:  # drops a stale journal and any torn line
        f.write(json.dumps({"format": FORMAT, "key": key}) + "\n")
        for entry in self._kept.values():
          f.write(json.dumps(entry) + "\n")

  @classmethod
  def open_for(cls, path: str | None, key: str, writer: bool) -> "GenerationJournal | None":
    """A journal at `path`, or None where none can be kept (no path, or an object-store path)."""
    if not path or storage.is_remote(path):
      return None
    return cls(path, key, writer)

  def _read(self) -> dict[tuple[int, int], dict[str, Any]]:
    if not os.path.isfile(self.path):
      return {}
    kept = {}
    with open(self.path, encoding="utf-8") as f:
      lines = f.read().split("\n")
    try:
      header = json.loads(lines[0])
    except (json.JSONDecodeError, IndexError):
      return {}
    if header != {"format": FORMAT, "key": self.key}:
      return {}
    for line in lines[1:]:
      try:
        entry = json.loads(line)
        kept[(entry["prompt_index"], entry["sample_index"])] = entry
      except (json.JSONDecodeError, KeyError, TypeError):
        continue  # a torn last line: that generation is made again
    return kept

  def __len__(self) -> int:
    return len(self._kept)

  def lookup(self, requests: Sequence[tuple[int, int]]) -> list[dict[str, Any]] | None:
    """The journaled generations of a whole batch of (prompt, sample) requests, or None if any is missing."""
    if not all(r in self._kept for r in requests):
      return None
    self.reused += len(requests)
    return [self._kept[r] for r in requests]

  def record(self, entries: Iterable[dict[str, Any]]) -> None:
    """Appends finished generations (dicts with prompt_index and sample_index) and flushes them to disk."""
    entries = list(entries)
    for entry in entries:
      self._kept[(entry["prompt_index"], entry["sample_index"])] = entry
    if not self.writer:
      return
    with open(self.path, "a", encoding="utf-8") as f:
      f.write("".join(json.dumps(entry) + "\n" for entry in entries))
      f.flush()
      os.fsync(f.fileno())

  def remove(self) -> None:
    """Deletes the file once the results it served are written."""
    if self.writer and os.path.exists(self.path):
      os.remove(self.path)
