"""Scalars to stdout, `metrics.jsonl` and TensorBoard event files (process 0 only).

The workdir may be local or a bucket URL (gs://...; see inoc_jax.runtime.storage).
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

import jax

from inoc_jax.runtime import storage


class MetricsWriter:

  def __init__(self, workdir: str, tensorboard: bool = True):
    self.active = jax.process_index() == 0
    self._jsonl = self._tb = None
    if not self.active:
      return
    storage.makedirs(workdir)
    self._jsonl = storage.LineLog(storage.join(workdir, "metrics.jsonl"))
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top  (gs:// needs google-cloud-storage)
      self._tb = SummaryWriter(storage.join(workdir, "tensorboard"))

  def write(self, step: int, scalars: Mapping[str, Any], prefix: str = "train") -> None:
    if not self.active:
      return
    values = {f"{prefix}/{k}": float(v) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({"step": int(step), "time": time.time(), **values}))
    if self._tb is not None:
      for key, value in values.items():
        self._tb.add_scalar(key, value, int(step))

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
