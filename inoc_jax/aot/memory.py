"""Per-device memory: what the compiled train step reports vs params + grads + Adam arithmetic.

All sizes are bytes per device. `compiled.memory_analysis()` of an SPMD
executable describes one partition, so its numbers are per device already:

  arguments    the inputs the step keeps alive: params + optimizer state + batch
  temporaries  everything else live inside the step: gradients, activations,
               gathered FSDP weights, partial weight gradients before reduction
  outputs      the new state, aliased onto the donated arguments

The arithmetic side sizes the same trees from their shapes, dtypes and
shardings alone, so a sharding rule that silently fails to apply (a leaf left
replicated) shows up as compiled state exceeding the fully-sharded formula.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

GIB = 2 ** 30


def leaf_bytes(leaf: Any) -> int:
  return int(math.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize


def tree_bytes(tree: Any) -> int:
  """Total (unsharded) bytes of every array leaf."""
  return sum(leaf_bytes(x) for x in jax.tree.leaves(tree))


def sharded_tree_bytes(tree: Any) -> int:
  """Bytes one device holds of `tree` (leaves are ShapeDtypeStructs/arrays with `.sharding`)."""
  total = 0
  for leaf in jax.tree.leaves(tree):
    shard_shape = leaf.sharding.shard_shape(leaf.shape)
    total += int(math.prod(shard_shape)) * np.dtype(leaf.dtype).itemsize
  return total


@dataclasses.dataclass(frozen=True)
class StateArithmetic:
  """params + grads + Adam per device if every leaf were split over `shards` devices.

  Attributes:
    params: all weights (trainable and frozen) in their storage dtype.
    grads: one gradient per trainable weight, same dtype.
    optimizer: the optimizer state as initialised (Adam: mu and nu per trainable weight).
    shards: devices one copy of the state is split over (fsdp x tensor; `data` replicates).
  """

  params: float
  grads: float
  optimizer: float
  shards: int

  @property
  def total(self) -> float:
    return self.params + self.grads + self.optimizer


def state_arithmetic(abstract_state: Any, shards: int) -> StateArithmetic:
  """The textbook estimate: every byte of the train state divided evenly over `shards` devices."""
  params = tree_bytes(abstract_state.params) + tree_bytes(abstract_state.frozen)
  grads = tree_bytes(abstract_state.params)
  optimizer = tree_bytes(abstract_state.opt_state)
  return StateArithmetic(params / shards, grads / shards, optimizer / shards, shards)


@dataclasses.dataclass(frozen=True)
class CompiledMemory:
  """Per-device sizes read from the compiled executable (plus gradients sized by their sharding).

  Attributes:
    arguments: params + optimizer state + batch, as the executable holds them.
    batch: the batch's share of `arguments`.
    temporaries: live buffers inside the step (gradients, activations, gathered weights).
    outputs_not_aliased: outputs that could not reuse a donated argument buffer.
    grads: gradient bytes when reduced to the parameters' shardings (part of `temporaries`).
  """

  arguments: int
  batch: int
  temporaries: int
  outputs_not_aliased: int
  grads: int

  @property
  def state(self) -> int:
    """params + optimizer state on one device (arguments without the batch)."""
    return self.arguments - self.batch

  @property
  def params_grads_optimizer(self) -> int:
    return self.state + self.grads

  @property
  def peak(self) -> int:
    """Upper bound of what the step needs resident at once."""
    return self.arguments + self.temporaries + self.outputs_not_aliased


def compiled_memory(compiled: Any, abstract_state: Any, abstract_batch: Any) -> CompiledMemory:
  """Reads `compiled.memory_analysis()`; raises RuntimeError if the backend gives none."""
  stats = compiled.memory_analysis()
  if stats is None:
    raise RuntimeError("this backend reports no memory analysis for compiled executables")
  return CompiledMemory(
      arguments=int(stats.argument_size_in_bytes),
      batch=sharded_tree_bytes(abstract_batch),
      temporaries=int(stats.temp_size_in_bytes),
      outputs_not_aliased=max(0, int(stats.output_size_in_bytes) - int(stats.alias_size_in_bytes)),
      grads=sharded_tree_bytes(abstract_state.params))


def human_bytes(num_bytes: float) -> str:
  """'7.09 GiB', '412.3 MiB', '18.0 KiB'."""
  for unit, size in (("GiB", GIB), ("MiB", 2 ** 20)):
    if abs(num_bytes) >= size:
      return f"{num_bytes / size:.{2 if unit == 'GiB' else 1}f} {unit}"
  return f"{num_bytes / 1024:.1f} KiB"
