"""Pytrees <-> plain nested dicts, and exact on-device checksums.

Checkpoints store nested dicts of arrays keyed by parameter paths
(`{"layers": {"0": {"attn": ...}}}`), not NNX or optax objects, so a checkpoint
stays readable when those libraries change their classes. `from_nested` puts
the arrays back into any tree with the same paths.

`checksums` gives one uint32 per leaf: the wrapping sum of the leaf's bits,
each weighted by an odd multiple of its flat index. Integer addition is exact
and associative, so the value does not depend on sharding or device count; a
truncated, zeroed or shuffled array changes it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inoc_jax.sharding.rules import key_to_str


def _keys(path) -> tuple[str, ...]:
  return tuple(k for k in map(key_to_str, path) if k is not None)


def to_nested(tree: Any) -> dict:
  """{path component: ... {last component: leaf}} for every array leaf of `tree`."""
  nested: dict = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    keys = _keys(path)
    node = nested
    for key in keys[:-1]:
      node = node.setdefault(key, {})
    node[keys[-1]] = leaf
  return nested


def from_nested(nested: dict, like: Any) -> Any:
  """`like` with each leaf replaced by the entry of `nested` at the same path."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
  values = []
  for path, _ in leaves:
    node = nested
    for key in _keys(path):
      node = node[key]
    values.append(node)
  return jax.tree_util.tree_unflatten(treedef, values)


def flat_paths(tree: Any) -> list[str]:
  return ["/".join(_keys(path)) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


_UINT = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}


def _leaf_checksum(x: jax.Array) -> jax.Array:
  bits = jax.lax.bitcast_convert_type(x, _UINT[x.dtype.itemsize]).astype(jnp.uint32)
  index = jnp.arange(x.size, dtype=jnp.uint32).reshape(x.shape)
  weights = index * jnp.uint32(0x9E3779B1) | jnp.uint32(1)
  return jnp.sum(bits * weights, dtype=jnp.uint32)


@jax.jit
def _tree_checksums(tree):
  return jax.tree.map(_leaf_checksum, tree)


# On one device, one small program per distinct leaf shape serves every tree (params, optimizer state,
# frozen base) and every save, where a program per tree took 1-2 s of compile each time. With several
# devices the whole tree stays one program: many small all-reduce programs in flight at once deadlocked
# XLA:CPU's collectives (8 fake devices, tests/test_resume.py) and two gloo processes (test_multiprocess.py).
_jitted_leaf_checksum = jax.jit(_leaf_checksum)


def checksums(tree: Any) -> dict[str, int]:
  """{leaf path: uint32 checksum} (computed on device, sharded or not)."""
  if not jax.tree_util.tree_leaves(tree):
    return {}
  if jax.device_count() == 1:
    sums = jax.device_get(jax.tree.map(_jitted_leaf_checksum, tree))
  else:
    sums = jax.device_get(_tree_checksums(tree))
  return dict(zip(flat_paths(tree), (int(np.asarray(s)) for s in jax.tree_util.tree_leaves(sums))))
