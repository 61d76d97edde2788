"""The per-expert tensors of an MoE checkpoint, read as one stacked tensor per projection.

Hugging Face MoE checkpoints (Qwen3-MoE, Mixtral) store one [out, in] tensor per expert,
`model.layers.{l}.mlp.experts.{e}.gate_proj.weight`; our experts are one [E, in, out]
kernel (model/moe.py). `ExpertStacking` wraps a TensorSource and shows each group as
`model.layers.{l}.mlp.experts.gate_proj.weight` of shape [E, out, in], reading expert e's
part from expert e's own tensor, so the loader's one-tensor-one-parameter plan and its
sliced reads (a shard reads only its rectangle) work unchanged. `per_expert` is the
inverse, for export.
"""

from __future__ import annotations

import re
from typing import Iterator, Sequence

import numpy as np

from inoc_jax.errors import CheckpointError

_PER_EXPERT = re.compile(r"(?P<prefix>.+\.experts)\.(?P<expert>\d+)\.(?P<rest>.+)")
_STACKED = re.compile(r"(?P<prefix>.+\.experts)\.(?P<rest>\D.*)")


def per_expert(name: str, array: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
  """A stacked `...experts.gate_proj.weight` [E, ...] as HF's `...experts.{e}.gate_proj.weight`; others as is."""
  m = _STACKED.fullmatch(name)
  if m is None:
    yield name, array
    return
  for e, part in enumerate(array):
    yield f"{m['prefix']}.{e}.{m['rest']}", part


class ExpertStacking:
  """A TensorSource whose per-expert tensors appear stacked (other tensors pass through)."""

  def __init__(self, source):
    self._source = source
    groups: dict[str, dict[int, str]] = {}
    self._names = []
    for name in source.names():
      m = _PER_EXPERT.fullmatch(name)
      if m is None:
        self._names.append(name)
      else:
        groups.setdefault(f"{m['prefix']}.{m['rest']}", {})[int(m["expert"])] = name
    self._stacks = {}
    for stacked, experts in groups.items():
      if sorted(experts) != list(range(len(experts))):
        missing = sorted(set(range(max(experts) + 1)) - set(experts))
        raise CheckpointError(f"The checkpoint has no expert {missing[0]} for {stacked} (it has "
                              f"{len(experts)} of them); finish the download or fix the file.")
      self._stacks[stacked] = [experts[e] for e in range(len(experts))]
    self._names.extend(self._stacks)

  def __enter__(self):
    self._source.__enter__()
    return self

  def __exit__(self, *exc):
    return self._source.__exit__(*exc)

  def names(self) -> list[str]:
    return list(self._names)

  def shape(self, name: str) -> tuple[int, ...]:
    if name not in self._stacks:
      return tuple(self._source.shape(name))
    members = self._stacks[name]
    return (len(members),) + tuple(self._source.shape(members[0]))

  def read(self, name: str, slices: Sequence[slice]) -> np.ndarray:
    if name not in self._stacks:
      return self._source.read(name, slices)
    members = self._stacks[name]
    chosen = range(len(members))[slices[0] if slices else slice(None)]
    return np.stack([self._source.read(members[e], tuple(slices[1:])) for e in chosen])

  def model_config(self):
    return self._source.model_config()
