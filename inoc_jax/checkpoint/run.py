"""The training loop's checkpoint policy: when to save, and how to stop on a signal.

  checkpoints = RunCheckpoints(config, workdir, arch, lora)
  start = start_state(spec, tx, mesh, seed, checkpoints.checkpointer, load_base)
  with StopSignals() as stop:
    for step in range(start.step, num_steps):
      state, metrics = train_step(state, batch)
      checkpoints.after_step(step + 1, num_steps, state, iterator, stop)   # may raise TrainingInterrupted
  checkpoints.close()
"""

from __future__ import annotations

import json
import logging

import jax
import ml_collections
import numpy as np

from inoc_jax.checkpoint.iterator_state import gather_states
from inoc_jax.checkpoint.manager import Checkpointer
from inoc_jax.checkpoint.preemption import StopSignals, TrainingInterrupted, resume_command
from inoc_jax.checkpoint.progress import RunProgress
from inoc_jax.checkpoint.resume import run_meta
from inoc_jax.errors import ConfigError
from inoc_jax.model.build import base_dtype, quant_config
from inoc_jax.model.config import ModelConfig
from inoc_jax.model.lora import LoraConfig
from inoc_jax.runtime.layout import RunLayout

log = logging.getLogger("inoc_jax")


ORBAX_SCHEMES = ("gs://",)  # besides local paths: what Orbax/TensorStore can write


def checkpoint_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  directory = config.checkpoint.dir or RunLayout(workdir).checkpoints  # Checkpointer resolves it
  if "://" in directory and not directory.startswith(ORBAX_SCHEMES):
    raise ConfigError(f"Checkpoints cannot be written to {directory!r}: Orbax needs a local path or a gs:// URL; "
                      "set --config.checkpoint.dir to one, or --config.checkpoint.enabled=False.")
  return directory


class RunCheckpoints:
  """Saves every `checkpoint.save_every` steps, at the end and on SIGTERM/SIGINT (`checkpoint.*` config)."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, arch: ModelConfig, lora: LoraConfig | None):
    self.workdir = workdir
    self.every = int(config.checkpoint.save_every)
    self.checkpointer = None
    if config.checkpoint.enabled:
      self.checkpointer = Checkpointer(checkpoint_dir(config, workdir), keep=config.checkpoint.keep,
                                       async_save=config.checkpoint.async_save,
                                       save_frozen=config.checkpoint.save_frozen)
    self._config = json.loads(config.to_json_best_effort())
    self._meta = run_meta(arch, lora, config.model.checkpoint, np.dtype(base_dtype(config)).name,
                          quant_config(config))
    self.progress = RunProgress()  # the trainer keeps it current; every save records it in `meta`

  def save(self, step: int, state, iterator) -> None:
    if self.checkpointer is not None:
      self.checkpointer.save(step, state, data_iterator=gather_states(iterator.get_state()), config=self._config,
                             run_meta={**self._meta, "progress": self.progress.to_json()})

  def after_step(self, step: int, num_steps: int, state, iterator, stop: StopSignals) -> None:
    """Call after optimizer step `step` (1-based) completed."""
    stopping = stop.requested()
    due = step == num_steps or (self.every > 0 and step % self.every == 0)
    if due or stopping:
      self.save(step, state, iterator)
    if not stopping:
      return
    if self.checkpointer is None:
      where = "no checkpoint was saved (checkpoint.enabled=False)"
    else:
      self.checkpointer.wait()
      where = f"checkpoint saved in {self.checkpointer.directory}"
    raise TrainingInterrupted(
        f"{stop.received} received: stopped after step {step} of {num_steps}; {where}. "
        f"Resume with: {resume_command(self.workdir)}", signal_name=stop.received, step=step)

  def close(self) -> None:
    if self.checkpointer is not None:
      self.checkpointer.close()
      if jax.process_index() == 0:
        log.info("checkpoints in %s: steps %s", self.checkpointer.directory, self.checkpointer.steps())
