"""Fold LoRA adapters into their base kernels (for export and fast sampling).

W' = W + scale * A @ B, per adapted projection (see `Projection.merged_kernel`); a
quantised base kernel is dequantised first. The result has exactly the tree of the
same model built without LoRA or quantisation, so it loads into a plain
`Transformer` and exports like any base checkpoint.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from inoc_jax.model.layers import Projection
from inoc_jax.model.moe import ExpertProjection
from inoc_jax.model.quantization import QuantizedWeight

# Base weights: every nnx.Param except LoRA adapters (LoRAParam subclasses Param), and quantised kernels.
BASE_WEIGHTS = nnx.Any(nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam)), QuantizedWeight)


def merge_lora(graphdef: nnx.GraphDef, *states: Any) -> nnx.State:
  """nnx.State of the base weights with every adapter folded in.

  Args:
    graphdef, states: a split model (e.g. `graphdef, params, frozen` of a TrainState).
      Without adapters the base weights are returned unchanged.

  Pure and traceable: run it under `jax.jit` with the base shardings as
  `out_shardings` to merge a sharded model without gathering it.
  """
  model = nnx.merge(graphdef, *states, copy=True)  # never write into the caller's Variables
  for _, module in nnx.iter_modules(model):
    if isinstance(module, Projection) and (module.lora is not None or module.quant is not None):
      module.fold_into_plain_kernel()
    elif isinstance(module, ExpertProjection) and module.lora is not None:
      module.kernel[...] = module.merged_kernel()
  return nnx.state(model, BASE_WEIGHTS)


def merge_lora_sharded(graphdef: nnx.GraphDef, states: tuple, out_shardings: Any) -> nnx.State:
  """`merge_lora` compiled with each merged leaf written straight to its sharding."""
  return jax.jit(lambda *s: merge_lora(graphdef, *s), out_shardings=out_shardings)(*states)
