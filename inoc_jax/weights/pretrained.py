"""Pretrained base weights from whatever `model.checkpoint` names (HF folder, GGUF file, Hub id, known name).

  pretrained = open_pretrained("smollm2-135m-instruct")
  arch = pretrained.model_config              # architecture comes from the checkpoint
  base = pretrained.load(spec, mesh)          # nnx.State of base weights on their shardings
  init_train_state(spec, tx, mesh, seed, pretrained=base)

  model = pretrained.load_model()             # or a ready Transformer (evaluation, sampling)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from inoc_jax import model_sources
from inoc_jax.model import build
from inoc_jax.model.config import ModelConfig
from inoc_jax.weights.expert_stacking import ExpertStacking
from inoc_jax.weights.gguf_import import GGUFSource
from inoc_jax.weights.hf_import import SafetensorsSource
from inoc_jax.weights.key_maps import GGUF_KEY_MAPS, HF_KEY_MAPS, KeyMap
from inoc_jax.weights.loader import load_params
from inoc_jax.weights.quantized_load import load_quantized

log = logging.getLogger("inoc_jax")


def _open_tensors(source: model_sources.Source):
  return GGUFSource(source.path) if source.kind == "gguf" else ExpertStacking(SafetensorsSource(source.path))


@dataclasses.dataclass
class Pretrained:
  """A resolved checkpoint: where it is, its architecture, and how to load it."""

  source: model_sources.Source
  model_config: ModelConfig

  @property
  def key_map(self) -> KeyMap:
    maps = GGUF_KEY_MAPS if self.source.kind == "gguf" else HF_KEY_MAPS
    return maps[self.model_config.family]

  def load(self, spec, mesh: Mesh) -> Any:
    """Base weights (every nnx.Param but LoRA, quantised kernels) of `spec`'s model, each on its sharding."""
    if spec.quant is not None:
      start = time.time()
      with _open_tensors(self.source) as tensors:
        params = load_quantized(tensors, self.key_map, spec, mesh, where=self.source.path)
      log.info("loaded %s weights from %s into a %s base in %.1fs", self.source.name, self.source.path,
               spec.quant.kind, time.time() - start)
      return params
    abstract, shardings = build.base_param_shardings(spec, mesh)
    return self.load_into(abstract, shardings)

  def load_model(self, mesh: Mesh | None = None, dtype=jnp.float32):
    """A `Transformer` (no LoRA) holding these weights, sharded over `mesh` (default: all devices, data axis)."""
    from inoc_jax.sharding.mesh import make_mesh  # pylint: disable=g-import-not-at-top
    spec = build.plain_spec(self.model_config, dtype)
    weights = self.load(spec, mesh if mesh is not None else make_mesh({"data": -1}))
    model = nnx.eval_shape(lambda: spec.build(nnx.Rngs(0)))
    nnx.update(model, weights)
    return model

  def load_into(self, abstract: Any, shardings: Any) -> Any:
    start = time.time()
    with _open_tensors(self.source) as tensors:
      params = load_params(tensors, self.key_map, abstract, shardings, where=self.source.path)
    log.info("loaded %s weights from %s in %.1fs", self.source.name, self.source.path, time.time() - start)
    return params


def model_config_of(source: model_sources.Source) -> ModelConfig:
  with _open_tensors(source) as tensors:
    return tensors.model_config()


def open_pretrained(spec: str) -> Pretrained:
  """Resolves `spec` (see model_sources.resolve) and reads its architecture."""
  source = model_sources.resolve(spec)
  return Pretrained(source=source, model_config=model_config_of(source))
