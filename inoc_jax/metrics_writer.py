"""Scalars to stdout, `metrics.jsonl`, TensorBoard event files and optionally W&B (process 0 only).

The workdir may be local or a bucket URL (gs://...; see inoc_jax.runtime.storage).
A run resumed at step S first drops the rows logged after S by the attempt that
died (they are logged again as the steps are replayed), in both sinks.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

import jax

from inoc_jax.runtime import storage
from inoc_jax.runtime.layout import RunLayout


def truncate_after(path: str, step: int) -> int:
  """Rewrites the JSON-lines file at `path` without its rows whose "step" exceeds `step`; returns how many."""
  if not storage.exists(path):
    return 0
  kept, dropped = [], 0
  for line in storage.read_text(path).splitlines(keepends=True):
    try:
      row_step = json.loads(line).get("step", 0)
    except ValueError:  # a line cut by a crash mid-write
      dropped += 1
      continue
    if row_step > step:
      dropped += 1
    else:
      kept.append(line if line.endswith("\n") else line + "\n")
  if dropped:
    storage.write_text(path, "".join(kept))
  return dropped


class MetricsWriter:
  """Process 0's scalar sinks for one run; `resume_step` = the optimizer step the run restarts from."""

  def __init__(self, workdir: str, tensorboard: bool = True, resume_step: int = 0, log: Mapping | None = None,
               run_config: Mapping[str, Any] | None = None):
    """log: the config's `log` block (W&B when log.wandb_project is set); run_config: recorded with the W&B run."""
    self.active = jax.process_index() == 0
    self._jsonl = self._tb = self._wandb = None
    if not self.active:
      return
    storage.makedirs(workdir)
    path = RunLayout(workdir).metrics
    truncate_after(path, resume_step)
    self._jsonl = storage.LineLog(path)
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top  (gs:// needs google-cloud-storage)
      # purge_step hides the dead attempt's events after the resume step from TensorBoard.
      self._tb = SummaryWriter(RunLayout(workdir).tensorboard, purge_step=resume_step + 1)
    if log and log.get("wandb_project"):
      from inoc_jax.metrics_wandb import WandbSink  # pylint: disable=g-import-not-at-top
      self._wandb = WandbSink(log, workdir, run_config or {})

  def write(self, step: int, scalars: Mapping[str, Any], prefix: str = "train") -> None:
    if not self.active:
      return
    values = {f"{prefix}/{k}": float(v) for k, v in scalars.items()}
    self._jsonl.write(storage.dumps_json({"step": int(step), "time": time.time(), **values}))
    if self._tb is not None:
      for key, value in values.items():
        self._tb.add_scalar(key, value, int(step))
    if self._wandb is not None:
      self._wandb.write(step, values)

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
    if self._wandb is not None:
      self._wandb.close()
