"""What `--checkpoint` names, loaded as a (graphdef, states) pair for the sampler.

* a training run (its workdir, `checkpoints/` folder or one step folder): the
  Orbax params, LoRA merged (`inoc_jax.checkpoint.params.restore_params`);
* an HF folder, a .gguf file, a Hub id or a known name such as
  `smollm2-135m-instruct`: pretrained weights (`inoc_jax.weights.pretrained`);
* `random` or `random:SEED`: the config's `model.preset` at random init (smoke tests).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
from flax import nnx
from jax.sharding import Mesh

from inoc_jax.errors import CheckpointError
from inoc_jax.model import build
from inoc_jax.model.config import ModelConfig, get_preset
from inoc_jax.runtime import layout

@dataclasses.dataclass
class LoadedModel:
  """graphdef + states for `nnx.merge`; name for results; run_config when the checkpoint carries one."""

  graphdef: nnx.GraphDef
  states: tuple[Any, ...]
  name: str
  model_config: ModelConfig
  step: int | None = None
  run_config: ml_collections.ConfigDict | None = None


def is_training_checkpoint(path: str) -> bool:
  path = os.path.expanduser(path)
  if not os.path.isdir(path):
    return False
  if os.path.isdir(os.path.join(path, layout.CHECKPOINTS)):
    return True
  return os.path.basename(os.path.normpath(path)).isdigit() or any(
      name.isdigit() for name in os.listdir(path))


def load_model(config: ml_collections.ConfigDict, checkpoint: str, mesh: Mesh | None = None) -> LoadedModel:
  dtype = build.compute_dtype(config.model.dtype)
  if checkpoint == "random" or checkpoint.startswith("random:"):
    seed = int(checkpoint.split(":", 1)[1]) if ":" in checkpoint else int(config.seed)
    arch = get_preset(config.model.preset)
    graphdef, state = nnx.split(build.random_model(arch, dtype, seed))
    return LoadedModel(graphdef, (state,), f"random-init:{config.model.preset}:seed{seed}", arch)
  if is_training_checkpoint(checkpoint):
    try:
      from inoc_jax.checkpoint.params import restore_params  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise CheckpointError("This build cannot read training checkpoints (inoc_jax.checkpoint is missing); "
                            "update inoc_jax.") from None
    restored = restore_params(checkpoint, mesh, dtype=dtype)
    return LoadedModel(restored.graphdef, (restored.params,), f"{os.path.normpath(checkpoint)}@{restored.step}",
                       restored.model_config, restored.step, restored.config)
  try:
    from inoc_jax.weights.pretrained import open_pretrained  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise CheckpointError("This build cannot import HF/GGUF weights (inoc_jax.weights is missing); update "
                          "inoc_jax or pass a training checkpoint.") from None
  pretrained = open_pretrained(checkpoint)
  model = pretrained.load_model(mesh, dtype=dtype)
  graphdef, state = nnx.split(model)
  return LoadedModel(graphdef, (state,), pretrained.source.name, pretrained.model_config)
