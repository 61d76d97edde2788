"""Ahead-of-time lowering of the exact train step a config would run, with no device memory used.

The state comes from `abstract_train_state` (shapes by `jax.eval_shape`,
shardings from the rule table) and the batch is a `jax.ShapeDtypeStruct`
carrying the batch sharding, so `lower(...).compile()` works for a 7B model on a
laptop: nothing is allocated, only compiled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import tempfile
import time
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh

from inoc_jax.model import build, config as model_config
from inoc_jax.sharding.mesh import batch_sharding
from inoc_jax.training.optimizer import make_optimizer
from inoc_jax.training.train_state import TrainState, abstract_train_state
from inoc_jax.training.train_step import BATCH_KEYS, StepOptions, TrainStep

# The schedule length only changes learning-rate constants, never shapes or memory.
_SCHEDULE_STEPS_WHEN_UNSET = 1000


@dataclasses.dataclass
class AbstractStep:
  """The train step for `mesh` and its abstract inputs.

  Attributes:
    step: the same TrainStep object the trainer builds.
    state: TrainState of ShapeDtypeStructs with shardings.
    batch: dict of [global_batch, seq_len] int32 ShapeDtypeStructs with the batch sharding.
    arch: the model architecture.
    attention: the target's attention kernel; 'splash' is compiled in Pallas interpret mode on CPU, a GPU
      target's 'cudnn' and 'flash' as 'xla' (CPU cannot lower cuDNN or Triton, so the memory is the XLA path's,
      an upper bound).
  """

  step: TrainStep
  state: TrainState
  batch: dict[str, jax.ShapeDtypeStruct]
  arch: model_config.ModelConfig
  attention: str = "xla"


def abstract_step(config: ml_collections.ConfigDict, mesh: Mesh, platform: str | None = None) -> AbstractStep:
  """The step `inoc_jax.train` would run on `platform` ('tpu', 'gpu', 'cpu'; default this process's)."""
  arch = model_config.get_preset(config.model.preset)
  attention = build.attention_impl(config, arch, platform)
  spec = build.training_spec(config, arch, attention="xla" if attention in ("cudnn", "flash") else attention)
  tx, schedule = make_optimizer(config.optim, config.train.num_steps or _SCHEDULE_STEPS_WHEN_UNSET)
  graphdef, state, shardings = abstract_train_state(spec, tx, mesh, config.seed)
  step = TrainStep(graphdef, tx, schedule, StepOptions.from_config(config), mesh, shardings)
  shape = (config.data.global_batch_size, config.data.seq_len)
  batch = {key: jax.ShapeDtypeStruct(shape, jnp.int32, sharding=batch_sharding(mesh)) for key in BATCH_KEYS}
  return AbstractStep(step=step, state=state, batch=batch, arch=arch, attention=attention)


@dataclasses.dataclass
class Compiled:
  """A compiled step and what XLA said while compiling it.

  Attributes:
    involuntary_remats: op names the SPMD partitioner could only reshard by
      replicating the whole tensor first (its 'Involuntary full rematerialization'
      warning): each is a full-size transient and an all-gather per step.
  """

  executable: Any
  lower_seconds: float
  compile_seconds: float
  involuntary_remats: list[str]


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
  """Captures file descriptor 2 (where XLA's C++ logging goes), then echoes it back."""
  captured: list[str] = []
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as sink:
    os.dup2(sink.fileno(), 2)
    try:
      yield captured
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      sink.seek(0)
      text = sink.read().decode("utf-8", "replace")
      captured.append(text)
      sys.stderr.write(text)


_REMAT_WARNING = re.compile(r'Involuntary full rematerialization.*?op_name="([^"]+)"')


def compile_step(abstract: AbstractStep) -> Compiled:
  """Lowers and compiles; XLA errors propagate to the caller, which words them for people."""
  start = time.perf_counter()
  lowered = abstract.step.lower(abstract.state, abstract.batch)
  lowered_at = time.perf_counter()
  with _captured_stderr() as log:
    executable = lowered.compile()
  remats = sorted(set(_REMAT_WARNING.findall(log[0] if log else "")))
  return Compiled(executable, lowered_at - start, time.perf_counter() - lowered_at, remats)
