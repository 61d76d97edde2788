"""Local Hugging Face checkpoints: `config.json` + `model.safetensors` (or shards + index).

Tensors are opened lazily with `safetensors.safe_open(...).get_slice`, so a
shard of a parameter reads only its own rectangle from disk (see layout.py).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Sequence

import numpy as np

from inoc_jax.errors import CheckpointError
from inoc_jax.model.config import ModelConfig
from inoc_jax.weights.hf_config import model_config_from_hf

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def read_hf_config(folder: str) -> dict:
  path = os.path.join(folder, "config.json")
  if not os.path.isfile(path):
    raise CheckpointError(f"{folder!r} has no config.json; point model.checkpoint at a Hugging Face model folder.")
  with open(path, encoding="utf-8") as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise CheckpointError(f"{path} is not valid JSON ({e}); re-download the model.") from None


def _weight_files(folder: str) -> dict[str, str]:
  """tensor name -> file holding it."""
  index = os.path.join(folder, INDEX_FILE)
  if os.path.isfile(index):
    with open(index, encoding="utf-8") as f:
      weight_map = json.load(f)["weight_map"]
    missing = sorted({file for file in weight_map.values() if not os.path.isfile(os.path.join(folder, file))})
    if missing:
      raise CheckpointError(f"{index} lists {', '.join(missing)} which are missing; finish the download.")
    return {name: os.path.join(folder, file) for name, file in weight_map.items()}
  files = [os.path.join(folder, SINGLE_FILE)] if os.path.isfile(os.path.join(folder, SINGLE_FILE)) else sorted(
      glob.glob(os.path.join(folder, "*.safetensors")))
  if not files:
    hint = " (only PyTorch .bin weights: convert them to safetensors)" if glob.glob(
        os.path.join(folder, "*.bin")) else ""
    raise CheckpointError(f"{folder!r} has no *.safetensors weights{hint}.")
  names = {}
  for file in files:
    handle = open_safetensors(file)
    names.update({name: file for name in handle.keys()})
    handle.__exit__(None, None, None)
  return names


def open_safetensors(file: str):
  """An entered `safe_open` handle, or CheckpointError for an empty, truncated or foreign file."""
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  try:
    return safe_open(file, framework="numpy").__enter__()
  except Exception as e:  # pylint: disable=broad-except  (SafetensorError, OSError: the file's fault either way)
    reason = " ".join(str(e).split())[:160] or type(e).__name__
    raise CheckpointError(f"{file} is not a readable safetensors file ({reason}); it is empty, truncated or not "
                          "safetensors: copy or download it again.") from None


class SafetensorsSource:
  """Tensors of an HF folder; each file is opened once and read slice by slice."""

  def __init__(self, folder: str):
    self.folder = folder
    self._files = _weight_files(folder)
    self._handles: dict[str, object] = {}

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def close(self) -> None:
    for handle in self._handles.values():
      handle.__exit__(None, None, None)
    self._handles = {}

  def _handle(self, file: str):
    if file not in self._handles:
      self._handles[file] = open_safetensors(file)
    return self._handles[file]

  def names(self) -> list[str]:
    return list(self._files)

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self._handle(self._files[name]).get_slice(name).get_shape())

  def read(self, name: str, slices: Sequence[slice]) -> np.ndarray:
    part = self._handle(self._files[name]).get_slice(name)
    block = part[tuple(slices)] if slices else part[:]
    return np.asarray(block)

  def model_config(self) -> ModelConfig:
    return model_config_from_hf(read_hf_config(self.folder), where=os.path.join(self.folder, "config.json"))
