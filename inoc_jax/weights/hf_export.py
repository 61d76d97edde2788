"""Write base weights as a Hugging Face folder that `AutoModelForCausalLM.from_pretrained` loads.

Output: `config.json`, `generation_config.json`, `model.safetensors` (or
`model-0000i-of-0000n.safetensors` + `model.safetensors.index.json` above
`max_shard_bytes`), and the tokenizer files given. Parameters are converted one
at a time (gathered across processes when sharded over hosts), so host memory
holds at most one output shard.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any, Iterable

import jax
import ml_dtypes
import numpy as np

from inoc_jax.errors import CheckpointError
from inoc_jax.model.config import ModelConfig
from inoc_jax.sharding.rules import path_to_str
from inoc_jax.weights.hf_config import hf_config_from_model
from inoc_jax.weights.expert_stacking import per_expert
from inoc_jax.weights.key_maps import HF_KEY_MAPS

log = logging.getLogger("inoc_jax")

EXPORT_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja")


def to_host(x: jax.Array) -> np.ndarray:
  if x.is_fully_addressable:
    return np.asarray(jax.device_get(x))
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def hf_tensors(cfg: ModelConfig, params: Any, dtype: str = "float32") -> Iterable[tuple[str, np.ndarray]]:
  """(HF tensor name, array) for every leaf of a base-weights tree (nnx.State or nested dict)."""
  key_map = HF_KEY_MAPS[cfg.family]
  np_dtype = EXPORT_DTYPES[dtype]
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = path_to_str(path)
    found = key_map.stored_for(name)
    if found is None:
      raise CheckpointError(f"Parameter {name} has no Hugging Face name (is it a LoRA adapter? merge first).")
    stored, layout = found
    yield from per_expert(stored, layout.to_stored(to_host(leaf)).astype(np_dtype))


def _write_shards(out_dir: str, tensors: Iterable[tuple[str, np.ndarray]], max_shard_bytes: int) -> list[str]:
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  shards: list[dict[str, np.ndarray]] = [{}]
  sizes = [0]
  temp_files, weight_map = [], {}
  write = jax.process_index() == 0

  def flush():
    name = f"shard-{len(temp_files):05d}.tmp"
    if write:
      save_file(shards[-1], os.path.join(out_dir, name), metadata={"format": "pt"})
    temp_files.append((name, list(shards[-1])))
    shards[-1], sizes[-1] = {}, 0

  for name, array in tensors:
    if sizes[-1] and sizes[-1] + array.nbytes > max_shard_bytes:
      flush()
    shards[-1][name] = array
    sizes[-1] += array.nbytes
  if shards[-1] or not temp_files:
    flush()
  if not write:
    return []
  final = ["model.safetensors"] if len(temp_files) == 1 else [
      f"model-{i + 1:05d}-of-{len(temp_files):05d}.safetensors" for i in range(len(temp_files))]
  for (temp, names), target in zip(temp_files, final):
    os.replace(os.path.join(out_dir, temp), os.path.join(out_dir, target))
    weight_map.update({n: target for n in names})
  if len(final) > 1:
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
      json.dump({"metadata": {}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
  return final


def export_hf(out_dir: str, cfg: ModelConfig, params: Any, *, dtype: str = "float32",
              max_shard_bytes: int = 5 * 2**30, tokenizer_dir: str | None = None,
              extra_files: dict[str, str] | None = None) -> list[str]:
  """Writes an HF folder; returns the weight files written.

  Args:
    out_dir: created if missing; existing weight files of an earlier export are replaced.
    cfg: the architecture (config.json is derived from it).
    params: base weights (LoRA merged, see model/merge.py), sharded or not.
    dtype: float32 | bfloat16 | float16 for the stored tensors.
    max_shard_bytes: split the safetensors above this size.
    tokenizer_dir: folder whose tokenizer files (TOKENIZER_FILES) are copied.
    extra_files: {file name: text} written as well (e.g. a tokenizer built from GGUF).
  """
  if dtype not in EXPORT_DTYPES:
    raise CheckpointError(f"Export dtype {dtype!r} is not one of {', '.join(EXPORT_DTYPES)}.")
  write = jax.process_index() == 0
  if write:
    os.makedirs(out_dir, exist_ok=True)
    for stale in os.listdir(out_dir):
      if stale.endswith(".safetensors") or stale == "model.safetensors.index.json":
        os.remove(os.path.join(out_dir, stale))
  files = _write_shards(out_dir, hf_tensors(cfg, params, dtype), max_shard_bytes)
  if not write:
    return files
  with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
    json.dump(hf_config_from_model(cfg, dtype), f, indent=2)
  generation = {"bos_token_id": cfg.bos_token_id, "eos_token_id": list(cfg.eos_token_ids) or None,
                "pad_token_id": cfg.pad_token_id}
  with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as f:
    json.dump({k: v for k, v in generation.items() if v is not None}, f, indent=2)
  copied = []
  if tokenizer_dir:
    for name in TOKENIZER_FILES:
      if os.path.isfile(os.path.join(tokenizer_dir, name)):
        shutil.copyfile(os.path.join(tokenizer_dir, name), os.path.join(out_dir, name))
        copied.append(name)
  for name, text in (extra_files or {}).items():
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
      f.write(text)
    copied.append(name)
  log.info("exported %s to %s (%s%s)", cfg.family, out_dir, ", ".join(files),
           f"; tokenizer files {', '.join(copied)}" if copied else "; no tokenizer files")
  return files
