"""Params-only restore for evaluation, sampling and export: a checkpoint -> a plain (LoRA-merged) model.

  restored = restore_params("runs/ip")            # a workdir, its checkpoints/ or one step folder
  model = restored.model()                         # Transformer without adapters, on `mesh`
  logits, _ = model(tokens, positions, segment_ids)

The optimizer state is never read. The architecture and LoRA settings come from
the checkpoint's own metadata, so the caller needs no config.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from etils import epath
from flax import nnx
from jax.sharding import Mesh

from inoc_jax.checkpoint import tree_codec
from inoc_jax.checkpoint.manager import Checkpointer
from inoc_jax.checkpoint.resume import check_frozen, lora_from_meta, quant_from_meta
from inoc_jax.errors import CheckpointError
from inoc_jax.model import build
from inoc_jax.model.config import ModelConfig
from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.transformer import Transformer
from inoc_jax.runtime import layout, storage
from inoc_jax.sharding import rules
from inoc_jax.sharding.mesh import make_mesh
from inoc_jax.training.train_state import init_frozen

log = logging.getLogger("inoc_jax")

CHECKPOINTS_DIR = layout.CHECKPOINTS


@dataclasses.dataclass
class RestoredParams:
  """A checkpoint's model with adapters merged.

  Attributes:
    model_config: the architecture.
    graphdef, params: a Transformer without LoRA, split (`nnx.merge(graphdef, params)`).
    step: the checkpoint's step.
    config: the training run's config.
    lora: the adapters' settings (already merged), or None for full fine-tuning.
    directory: the checkpoint folder read.
    adapters: the LoRA adapters as trained (nnx.State of lora_a / lora_b), or None for full fine-tuning.
  """

  model_config: ModelConfig
  graphdef: nnx.GraphDef
  params: nnx.State
  step: int
  config: ml_collections.ConfigDict
  lora: LoraConfig | None
  directory: str
  adapters: Any = None

  def model(self) -> Transformer:
    return nnx.merge(self.graphdef, self.params)


def locate(path: str, step: int | None = None) -> tuple[str, int | None]:
  """(checkpoint directory, step or None for the newest) from a workdir, its checkpoints/ or a step folder."""
  p = epath.Path(storage.resolve(path))
  if not p.exists():
    raise CheckpointError(f"Checkpoint path {path!r} does not exist; pass a run's workdir or checkpoint folder.")
  if (p / CHECKPOINTS_DIR).exists():
    return str(p / CHECKPOINTS_DIR), step
  if p.name.isdigit() and (p / "meta").exists():
    if step is not None and step != int(p.name):
      raise CheckpointError(f"{path!r} is step {p.name}, not step {step}.")
    return str(p.parent), int(p.name)
  return str(p), step


def restore_params(path: str, mesh: Mesh | None = None, *, step: int | None = None, dtype=jnp.float32,
                   load_base=None) -> RestoredParams:
  """Restores a checkpoint's parameters onto `mesh` and merges LoRA.

  Args:
    path: a run's workdir, its `checkpoints/` folder, or one step folder (`.../checkpoints/400`).
    mesh: target mesh (default: all devices on the `data` axis, i.e. replicated).
    step: which step (default: the newest readable one; unreadable newer steps are skipped).
    dtype: compute dtype of the returned model (params stay float32).
    load_base: optional override returning base weights for a LoRA checkpoint without
      frozen weights (default: the run's `model.checkpoint`, else its seed).
  """
  directory, step = locate(path, step)
  mesh = mesh if mesh is not None else make_mesh({"data": -1})
  checkpointer = Checkpointer(directory, read_only=True)
  steps = checkpointer.steps()
  if not steps:
    raise CheckpointError(f"No checkpoint in {directory}; train first or pass another path.")
  meta = checkpointer.read_json(step if step is not None else steps[-1], "meta")
  arch, lora = ModelConfig.from_dict(meta["model_config"]), lora_from_meta(meta)
  # the base's storage dtype (checkpoints from before model.base_dtype hold float32)
  spec = build.saved_spec(arch, lora, dtype, jnp.dtype(meta.get("base_dtype", "float32")), quant_from_meta(meta))
  graphdef, abstract_params, abstract_frozen = spec.abstract()
  targets = {"params": abstract_params, "frozen": abstract_frozen}
  shardings = {name: rules.tree_shardings(tree, mesh) for name, tree in targets.items()}
  if step is None:
    restored = checkpointer.restore_latest(targets, shardings)
  else:
    if step not in steps:
      raise CheckpointError(f"{directory} has no step {step}; it has {steps}.")
    restored = checkpointer.restore_step(step, targets, shardings)
  config = ml_collections.ConfigDict(restored.config)
  frozen = restored.frozen
  if frozen is None:
    frozen = abstract_frozen
    if jax.tree_util.tree_leaves(abstract_frozen):
      source = restored.meta.get("model_source") or ""
      if load_base is not None:
        base = load_base(spec, mesh)
      elif source:
        from inoc_jax.weights.pretrained import open_pretrained  # pylint: disable=g-import-not-at-top
        base = open_pretrained(source).load(spec, mesh)
      else:
        base = None
      frozen = (tree_codec.from_nested(tree_codec.to_nested(base), abstract_frozen) if base is not None
                else init_frozen(spec, mesh, int(config.get("seed", 0))))
      check_frozen(frozen, restored, source or "the run's seed")
  plain_graphdef, merged = build.merged_for_sampling(graphdef, (restored.params, frozen), arch, mesh, dtype)
  log.info("restored step %d from %s (%s)", restored.step, directory, "LoRA merged" if lora else "full weights")
  return RestoredParams(arch, plain_graphdef, merged, restored.step, config, lora, os.fspath(directory),
                        restored.params if lora else None)
