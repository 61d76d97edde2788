"""LoRA adapters in PEFT's format: `adapter_config.json` + `adapter_model.safetensors`, loadable by
`peft.PeftModel.from_pretrained(base, folder)` and servable by vLLM (`--lora-modules name=folder`).

PEFT stores, per adapted `nn.Linear` (weight [out, in]), `lora_A.weight` [r, in] and `lora_B.weight` [out, r] and
adds `scaling * B @ A` with scaling = alpha / r (alpha / sqrt(r) with `use_rslora`). Ours are `lora_a`
[in..., r] and `lora_b` [r, out...] with W' = W + scale * (a @ b) in our [in, out] layout, and the HF layout of a
kernel is its [in, out] flattening transposed, so A = a.reshape(in, r).T and B = b.reshape(r, out).T under the
same scale. Tensor names follow the HF key map of the model family.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable

import jax
import numpy as np

from inoc_jax.errors import CheckpointError
from inoc_jax.model.config import ModelConfig
from inoc_jax.model.lora import LoraConfig
from inoc_jax.sharding.rules import path_to_str
from inoc_jax.weights.hf_export import EXPORT_DTYPES, to_host
from inoc_jax.weights.key_maps import HF_KEY_MAPS

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def peft_tensors(cfg: ModelConfig, adapters: Any, lora: LoraConfig, dtype: str = "float32"
                 ) -> Iterable[tuple[str, np.ndarray]]:
  """(PEFT tensor name, array) for every adapter leaf (`lora_a` / `lora_b`) of a LoRA params tree."""
  key_map, np_dtype = HF_KEY_MAPS[cfg.family], EXPORT_DTYPES[dtype]
  for path, leaf in jax.tree_util.tree_flatten_with_path(adapters)[0]:
    name = path_to_str(path)
    module_path, _, which = name.rpartition("/")
    found = key_map.stored_for(f"{module_path}/kernel")
    if which not in ("lora_a", "lora_b") or found is None:
      raise CheckpointError(f"{name} is not a LoRA adapter of a {cfg.family} projection; export the merged model.")
    stored, layout = found
    if layout.hooks or not stored.endswith(".weight"):
      raise CheckpointError(f"{stored} is not a plain transposed matrix in the HF format; PEFT export needs one.")
    array = to_host(leaf)
    matrix = array.reshape(-1, lora.rank).T if which == "lora_a" else array.reshape(lora.rank, -1).T
    suffix = "lora_A" if which == "lora_a" else "lora_B"
    # contiguous: safetensors writes the buffer as laid out in memory, so a transposed view would be scrambled
    yield f"base_model.model.{stored[:-len('.weight')]}.{suffix}.weight", np.ascontiguousarray(matrix, np_dtype)


def adapter_config(lora: LoraConfig, target_modules: Iterable[str], base_model: str) -> dict:
  """PEFT's LoraConfig fields for these adapters (inference mode, no bias, no extra trained modules)."""
  return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
          "r": lora.rank, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout, "use_rslora": lora.rslora,
          "target_modules": sorted(set(target_modules)), "bias": "none", "fan_in_fan_out": False,
          "inference_mode": True, "modules_to_save": None, "init_lora_weights": True}


def export_peft(out_dir: str, cfg: ModelConfig, adapters: Any, lora: LoraConfig, *, base_model: str = "",
                dtype: str = "float32") -> list[str]:
  """Writes the adapter folder; returns the files written (process 0 writes, every process gathers)."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  tensors = dict(peft_tensors(cfg, adapters, lora, dtype))
  if not tensors:
    raise CheckpointError("The checkpoint has no LoRA adapters (full fine-tuning); export the merged model only.")
  modules = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in tensors}
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, ADAPTER_WEIGHTS), metadata={"format": "pt"})
    with open(os.path.join(out_dir, ADAPTER_CONFIG), "w", encoding="utf-8") as f:
      json.dump(adapter_config(lora, modules, base_model), f, indent=2)
  return [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
