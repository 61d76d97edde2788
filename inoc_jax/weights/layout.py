"""How a stored tensor becomes one of our parameters, and how to read only a slice of it.

Checkpoint formats store a projection as a PyTorch-style matrix [out, in];
our parameters keep structured shapes (q: [d_model, heads, head_dim]). A
`Layout` describes the conversion as data:

  1. `perm`:   transpose the stored array (e.g. (1, 0) turns [out, in] into [in, out]);
  2. `groups`: split each transposed axis into this many of our axes, row-major
               (e.g. (1, 2) splits [d, heads*head_dim] into [d, heads, head_dim]);
  3. `hooks`:  value fixes applied to a block of our layout (undo llama.cpp's q/k
               row order, Gemma's +1 on GGUF norms).

Because the split is row-major, a block of our array that is sliced only on
the *first* axis of each group is a contiguous range of the stored axis. So a
shard is read as one rectangular slice of the stored tensor (plus the full
extent of the inner axes of each group, which our sharding rules never split),
and nothing else is read: `stored_slices` computes that rectangle, `to_block`
turns what was read into the requested block.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np

Hook = Callable[[np.ndarray], np.ndarray]


def _index_slices(index: Sequence[slice], shape: Sequence[int]) -> list[tuple[int, int]]:
  """(start, stop) per axis of a block index as given by jax (slices with None bounds)."""
  bounds = []
  for s, n in zip(tuple(index) + (slice(None),) * (len(shape) - len(index)), shape):
    start, stop, step = s.indices(n)
    if step != 1:
      raise ValueError(f"strided shard index {s} is not supported")
    bounds.append((start, stop))
  return bounds


@dataclasses.dataclass(frozen=True)
class Layout:
  """Stored tensor -> our parameter (see module docstring).

  Attributes:
    perm: transpose of the stored array, or () for none.
    groups: number of our axes made from each transposed stored axis; () means
      one each (no split).
    hooks: functions applied, in order, to blocks in our layout; each must act
      independently along any axis that is not an inner axis of a group.
    inverse_hooks: the hooks that undo `hooks` (for writing this format), in order.
  """

  perm: tuple[int, ...] = ()
  groups: tuple[int, ...] = ()
  hooks: tuple[Hook, ...] = ()
  inverse_hooks: tuple[Hook, ...] = ()

  def _spans(self, ours: Sequence[int]) -> list[tuple[int, int]]:
    """(first axis, number of axes) of our axes per transposed stored axis."""
    groups = self.groups or (1,) * len(ours)
    if sum(groups) != len(ours):
      raise ValueError(f"layout groups {groups} do not cover a rank-{len(ours)} parameter")
    spans, axis = [], 0
    for g in groups:
      spans.append((axis, g))
      axis += g
    return spans

  def _untranspose(self, per_transposed_axis: list) -> tuple:
    """Values listed per transposed axis -> the same values listed per stored axis."""
    perm = self.perm or tuple(range(len(per_transposed_axis)))
    stored = [None] * len(perm)
    for transposed_axis, stored_axis in enumerate(perm):
      stored[stored_axis] = per_transposed_axis[transposed_axis]
    return tuple(stored)

  def stored_shape(self, ours: Sequence[int]) -> tuple[int, ...]:
    """Shape the stored tensor must have for our parameter shape `ours`."""
    return self._untranspose([math.prod(ours[a:a + g]) for a, g in self._spans(ours)])

  def stored_slices(self, ours: Sequence[int], index: Sequence[slice]) -> tuple[slice, ...]:
    """The rectangle of the stored tensor that covers block `index` of our parameter."""
    bounds = _index_slices(index, ours)
    ranges = []
    for a, g in self._spans(ours):
      inner = math.prod(ours[a + 1:a + g])
      ranges.append(slice(bounds[a][0] * inner, bounds[a][1] * inner))
    return self._untranspose(ranges)

  def to_block(self, stored_block: np.ndarray, ours: Sequence[int], index: Sequence[slice]) -> np.ndarray:
    """What `stored_slices` read -> block `index` of our parameter."""
    bounds = _index_slices(index, ours)
    spans = self._spans(ours)
    block = np.transpose(stored_block, self.perm or tuple(range(stored_block.ndim)))
    shape = []
    for a, g in spans:
      shape.extend([bounds[a][1] - bounds[a][0], *ours[a + 1:a + g]])
    block = block.reshape(shape)
    for hook in self.hooks:
      block = hook(block)
    first_axes = {a for a, _ in spans}  # already cut by the read; inner axes were read whole
    return block[tuple(slice(None) if i in first_axes else slice(*bounds[i]) for i in range(len(ours)))]

  def to_stored(self, ours: np.ndarray) -> np.ndarray:
    """A whole parameter in our layout -> the stored tensor (for export)."""
    for hook in self.inverse_hooks:
      ours = hook(ours)
    merged = np.reshape(ours, [math.prod(ours.shape[a:a + g]) for a, g in self._spans(ours.shape)])
    perm = self.perm or tuple(range(merged.ndim))
    return np.ascontiguousarray(np.transpose(merged, np.argsort(perm)))


# -- value hooks ---------------------------------------------------------------

def rope_interleaved_to_halves(block: np.ndarray) -> np.ndarray:
  """llama.cpp stores each q/k head's rows as (x0, y0, x1, y1, ...); we use (x0, x1, ..., y0, y1, ...).

  Acts on the last axis (head_dim) of a [..., head_dim] block.
  """
  head_dim = block.shape[-1]
  return block.reshape(block.shape[:-1] + (head_dim // 2, 2)).swapaxes(-1, -2).reshape(block.shape)


def rope_halves_to_interleaved(block: np.ndarray) -> np.ndarray:
  head_dim = block.shape[-1]
  return block.reshape(block.shape[:-1] + (2, head_dim // 2)).swapaxes(-1, -2).reshape(block.shape)


def minus_one(block: np.ndarray) -> np.ndarray:
  """llama.cpp stores Gemma norm weights as 1 + w; we store w."""
  return block - np.asarray(1, block.dtype)


def plus_one(block: np.ndarray) -> np.ndarray:
  return block + np.asarray(1, block.dtype)


# -- the layouts the key maps use ------------------------------------------------

SAME = Layout()
LINEAR = Layout(perm=(1, 0))                           # [out, in] -> [in, out]
TO_HEADS = Layout(perm=(1, 0), groups=(1, 2))          # [heads*hd, d] -> [d, heads, hd]
FROM_HEADS = Layout(perm=(1, 0), groups=(2, 1))        # [d, heads*hd] -> [heads, hd, d]
BIAS_HEADS = Layout(groups=(2,))                       # [heads*hd] -> [heads, hd]
EXPERTS = Layout(perm=(0, 2, 1))                       # [experts, out, in] -> [experts, in, out]


def with_hooks(layout: Layout, hooks: Sequence[Hook], inverse: Sequence[Hook]) -> Layout:
  return dataclasses.replace(layout, hooks=layout.hooks + tuple(hooks),
                             inverse_hooks=tuple(inverse) + layout.inverse_hooks)
