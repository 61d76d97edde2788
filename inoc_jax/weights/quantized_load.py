"""Pretrained weights into a quantised frozen base (QLoRA), one kernel at a time.

Each block kernel is read dense onto its sharding, quantised there (int8 or NF4,
model/quantization.py) and dropped before the next is read, so the peak is the
quantised model plus one dense kernel, never the dense model.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx
from jax.sharding import Mesh

from inoc_jax.model import build
from inoc_jax.model.layers import Projection
from inoc_jax.model.quantization import quantize_jitted
from inoc_jax.sharding.rules import path_to_str
from inoc_jax.weights.loader import TensorSource, iter_params
from inoc_jax.weights.key_maps import KeyMap


def quantized_kernels(spec: build.ModelSpec) -> dict[str, int]:
  """{path of a quantised `kernel` leaf: its number of input axes} in `spec`'s model."""
  model = nnx.eval_shape(lambda: spec.build(nnx.Rngs(0)))
  return {"/".join(map(str, path)) + "/kernel": len(module.in_shape) for path, module in nnx.iter_modules(model)
          if isinstance(module, Projection) and module.quant is not None}


def load_quantized(source: TensorSource, key_map: KeyMap, spec: build.ModelSpec, mesh: Mesh, where: str) -> Any:
  """The base weights (BASE_WEIGHTS state) of quantised `spec`, every leaf on its sharding.

  Args:
    source, key_map, where: as for `loader.load_params`.
    spec: a spec with `quant` set (build.training_spec / saved_spec of a model.base_quant run).
    mesh: the target mesh.
  """
  dense_abstract, dense_shardings = build.base_param_shardings(spec.dense(), mesh)
  abstract, shardings = build.base_param_shardings(spec, mesh)
  target = {path_to_str(p): s for p, s in jax.tree_util.tree_flatten_with_path(
      shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))[0]}
  inputs = quantized_kernels(spec)
  values = {}
  for path, array in iter_params(source, key_map, dense_abstract, dense_shardings, where):
    if path in inputs:
      codes, scales = quantize_jitted(array, spec.quant, inputs[path])
      values[path] = jax.device_put(codes, target[path])
      values[path + "_scale"] = jax.device_put(scales, target[path + "_scale"])
    else:
      values[path] = array
    del array
  leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
  return jax.tree_util.tree_unflatten(treedef, [values[path_to_str(p)] for p, _ in leaves])
