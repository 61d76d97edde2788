"""Fill an abstract, sharded parameter tree from stored tensors, one shard at a time.

Every leaf becomes `jax.make_array_from_callback(shape, sharding, read_block)`:
each process reads exactly the blocks its own devices hold (replicated blocks
are read once and reused), so the full model never sits on one host or device.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Protocol, Sequence

import jax
import numpy as np

from inoc_jax.errors import CheckpointError
from inoc_jax.sharding.rules import path_to_str
from inoc_jax.weights.key_maps import KeyMap

log = logging.getLogger("inoc_jax")


class TensorSource(Protocol):
  """What a checkpoint format provides (SafetensorsSource, GGUFSource)."""

  def names(self) -> list[str]: ...
  def shape(self, name: str) -> tuple[int, ...]: ...
  def read(self, name: str, slices: Sequence[slice]) -> np.ndarray: ...


def _index_key(index: Sequence[slice]) -> tuple:
  return tuple((s.start, s.stop, s.step) for s in index)


def load_params(source: TensorSource, key_map: KeyMap, abstract: Any, shardings: Any, where: str) -> Any:
  """Returns `abstract` (a tree of ShapeDtypeStructs, e.g. an nnx.State) with every leaf loaded.

  Args:
    source: the stored tensors.
    key_map: stored name <-> parameter path rules of the format and family.
    abstract: the target tree (shapes and dtypes).
    shardings: NamedSharding per leaf of `abstract`.
    where: the checkpoint's name for error messages.

  Raises:
    CheckpointError: a parameter has no stored tensor, a stored tensor has no
      parameter, or shapes disagree (naming the tensor and both shapes).
  """
  treedef = jax.tree_util.tree_structure(abstract)
  return jax.tree_util.tree_unflatten(treedef, [a for _, a in iter_params(source, key_map, abstract, shardings,
                                                                          where)])


def iter_params(source: TensorSource, key_map: KeyMap, abstract: Any, shardings: Any, where: str
                ) -> Iterator[tuple[str, jax.Array]]:
  """(parameter path, loaded array) for every leaf of `abstract` in tree order, each read when asked for.

  Everything is checked before the first read (see `load_params`), so a mismatch never costs a load.
  """
  planned, unmatched = key_map.plan(source.names())
  if unmatched:
    raise CheckpointError(f"{where} has tensors the model cannot use ({', '.join(sorted(unmatched)[:5])}); the "
                          "architecture has a feature inoc_jax does not implement or the key map is incomplete.")
  leaves = jax.tree_util.tree_flatten_with_path(abstract)[0]
  paths = [path_to_str(p) for p, _ in leaves]
  missing = [p for p in paths if p not in planned]
  if missing:
    expected = [key_map.stored_for(p) for p in missing[:3]]
    names = ", ".join(f"{p} (stored as {e[0] if e else '?'})" for p, e in zip(missing[:3], expected))
    raise CheckpointError(f"{where} lacks tensors for {len(missing)} parameters, e.g. {names}; the config and the "
                          "weights disagree (layers, tied embeddings, biases).")
  extra = sorted(set(planned) - set(paths))
  if extra:
    log.info("%s: skipping %d stored tensors the model does not use (%s)", where, len(extra), ", ".join(extra[:4]))
  for path, (_, leaf) in zip(paths, leaves):
    name, layout = planned[path]
    want = layout.stored_shape(leaf.shape)
    have = tuple(source.shape(name))
    if want != have:
      raise CheckpointError(f"Tensor {name} in {where} has shape {have} but parameter {path} needs {want} "
                            f"(model shape {tuple(leaf.shape)}); the model config does not match the weights.")

  flat_shardings = jax.tree_util.tree_leaves(shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
  for path, (_, leaf), sharding in zip(paths, leaves, flat_shardings):
    name, layout = planned[path]
    cache: dict[tuple, np.ndarray] = {}

    def read_block(index, name=name, layout=layout, leaf=leaf, cache=cache):
      key = _index_key(index)
      if key not in cache:
        stored = source.read(name, layout.stored_slices(leaf.shape, index))
        cache[key] = np.asarray(layout.to_block(stored, leaf.shape, index), dtype=leaf.dtype)
      return cache[key]

    yield path, jax.make_array_from_callback(tuple(leaf.shape), sharding, read_block)
