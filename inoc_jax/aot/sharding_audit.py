"""Which sharding rules could not apply on a given mesh, and what that costs per device.

`rules.fit_spec` deliberately drops a mesh axis that does not divide the
dimension it would shard (e.g. tensor=8 over Qwen2-7B's 4 KV heads) and
replicates that dimension instead of failing. That keeps odd shapes trainable,
but on a large mesh it can quietly replicate gigabytes. This module lists every
such fallback, grouped over layers, for `compile_check` to print or reject.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from inoc_jax.sharding import rules


@dataclasses.dataclass(frozen=True)
class RuleFallback:
  """One parameter path pattern whose rule lost a mesh axis.

  Attributes:
    pattern: path with layer indices replaced by '*', e.g. 'layers/*/attn/k_proj/kernel'.
    shape: the array shape.
    dim: index of the dimension the axis should have split.
    axis: mesh axis that was dropped; axis_size its size.
    count: how many parameter arrays share this pattern.
    extra_bytes: per-device bytes the fallback costs over all `count` arrays (parameters
      only; gradients and each optimizer moment add the same again).
  """

  pattern: str
  shape: tuple[int, ...]
  dim: int
  axis: str
  axis_size: int
  count: int
  extra_bytes: int

  def sentence(self) -> str:
    return (f"the sharding rule for {self.pattern} {list(self.shape)} cannot split dimension {self.dim} "
            f"(size {self.shape[self.dim]}) over mesh axis {self.axis}={self.axis_size}, so "
            f"{'this array is' if self.count == 1 else f'these {self.count} arrays are'} replicated over "
            f"{self.axis} (+{self.extra_bytes / 2**20:.1f} MiB of parameters per device); use a {self.axis} size "
            f"that divides {self.shape[self.dim]}")


def _axes(entry) -> tuple[str, ...]:
  return () if entry is None else (entry if isinstance(entry, tuple) else (entry,))


def rule_fallbacks(params: Any, mesh: Mesh) -> list[RuleFallback]:
  """Every (pattern, dimension, axis) where the rule table asked for an axis fit_spec had to drop.

  Most costly first.

  Args:
    params: a tree of arrays or ShapeDtypeStructs (the trainable and frozen weights).
    mesh: the target mesh.
  """
  found: dict[tuple, list] = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = rules.path_to_str(path)
    shape = tuple(leaf.shape)
    requested = list(rules.spec_for(name))[:len(shape)]
    applied = list(rules.fit_spec(rules.spec_for(name), shape, mesh))
    applied += [None] * (len(shape) - len(applied))
    for dim, entry in enumerate(requested):
      kept = set(_axes(applied[dim]))
      for axis in _axes(entry):
        if mesh.shape[axis] > 1 and axis not in kept:
          pattern = re.sub(r"/\d+/", "/*/", name)
          itemsize = np.dtype(leaf.dtype).itemsize
          shard_now = math.prod(leaf.sharding.shard_shape(shape)) if hasattr(leaf, "sharding") else math.prod(shape)
          extra = int(shard_now * itemsize * (1 - 1 / mesh.shape[axis]))
          found.setdefault((pattern, shape, dim, axis), []).append(extra)
  return [RuleFallback(pattern=p, shape=s, dim=d, axis=a, axis_size=int(mesh.shape[a]), count=len(extras),
                       extra_bytes=sum(extras))
          for (p, s, d, a), extras in sorted(found.items(), key=lambda item: (-sum(item[1]), item[0]))]
