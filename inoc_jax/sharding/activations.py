"""Sharding constraints on activations: keep the batch split across ('data', 'fsdp').

The parameter rule table alone does not tell GSPMD how to shard the batch
inside the model. Left alone, the partitioner may prefer to all-gather the
*batch* and contract over the FSDP-sharded weight dimension (every device then
runs the whole batch and all-reduces the partial sums) instead of gathering the
weights: measured with `compile_check` on qwen2-0.5b over 16 fsdp devices, every
MLP ran on all 4096 tokens per device and the temporaries were 10x the model.
Pinning the residual stream, the MLP hidden layer and the logits to
batch-sharded layouts restores ZeRO-3 behaviour (gather weights, keep rows).

Constraints apply only when a mesh with the ('data', 'fsdp', 'tensor') axes is
in context (`jax.set_mesh`, entered by the train/eval steps); elsewhere (a
single-device sampler, unit tests of one layer) `constrain` returns its input.
"""

from __future__ import annotations

import jax
from jax.sharding import PartitionSpec as P

from inoc_jax.sharding.mesh import BATCH_AXES, MESH_AXES
from inoc_jax.sharding.rules import fit_spec

# Logical activation dimension -> mesh axes (None = replicated).
ACTIVATION_AXES: dict[str, str | tuple[str, ...] | None] = {
    "batch": BATCH_AXES,
    "batch_data": "data",             # rows split over `data` only (replicated over fsdp)
    "length": None,
    "embed": None,
    "embed_shard": "fsdp",            # d_model split like the embedding table's columns
    "heads": "tensor",
    "head_dim": None,
    "mlp": "tensor",
    "vocab": ("tensor", "fsdp"),      # vocab-parallel output head (see model.layers.vocab_parallel_logits)
}


def activation_spec(names: tuple[str | None, ...]) -> P:
  """PartitionSpec for an activation whose dimensions have these logical names (None = replicated)."""
  entries = [None if name is None else ACTIVATION_AXES[name] for name in names]
  used = [axis for entry in entries if entry for axis in (entry if isinstance(entry, tuple) else (entry,))]
  if len(used) != len(set(used)):
    raise ValueError(f"logical dimensions {names} would use a mesh axis twice ({used})")
  return P(*entries)


def constrain(x: jax.Array, *names: str | None) -> jax.Array:
  """`with_sharding_constraint` by logical dimension names, if a training mesh is in context.

  Axes that do not divide their dimension are dropped (as for parameters), so a
  batch of one row or an odd vocabulary stays valid.
  """
  if len(names) != x.ndim:
    raise ValueError(f"constrain got {len(names)} names {names} for an array of rank {x.ndim}")
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or not set(MESH_AXES) <= set(mesh.axis_names):
    return x
  return jax.lax.with_sharding_constraint(x, fit_spec(activation_spec(names), x.shape, mesh))
