"""GGUF files (llama.cpp): metadata -> ModelConfig, tensors dequantised row range by row range.

The header (metadata and tensor table) is parsed once per file by
`data/gguf_metadata.py` (gguf.GGUFReader takes ~4 s on SmolLM2's vocabulary);
each tensor is then memory-mapped, so reading a shard touches only its rows.
Tensor shapes are reported in PyTorch order ([out, in], the reverse of
ggml's `ne`), which makes the GGUF key map's layouts the same as the HF ones
apart from llama.cpp's own conventions (q/k row order for llama, Gemma's
1 + w norms; see key_maps.py). The tokenizer stored in the same file is read by
the data layer, not here.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, Sequence

import numpy as np

from inoc_jax.data.gguf_metadata import GGUFFormatError, GGUFHeader, read_header
from inoc_jax.errors import CheckpointError
from inoc_jax.model.config import ModelConfig, RopeScaling, rope_inverse_frequencies
from inoc_jax.weights import dequant

FAMILIES = ("llama", "qwen2", "gemma")


def _open_header(path: str) -> GGUFHeader:
  stat = os.stat(path)
  return _cached_header(os.path.realpath(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _cached_header(path: str, mtime_ns: int, size: int) -> GGUFHeader:
  """One parse per file for the config and the weights."""
  del mtime_ns, size  # cache key only: a rewritten file is parsed again
  try:
    return read_header(path)
  except (GGUFFormatError, OSError) as e:
    raise CheckpointError(f"Cannot read {path!r} as a GGUF file ({e}); check that the download is "
                          "complete.") from None


def _dequantise(raw_rows: np.ndarray, type_name: str, row_values: int) -> np.ndarray:
  fn = dequant.DEQUANTISERS.get(type_name)
  if fn is not None:
    return fn(raw_rows)
  import gguf  # pylint: disable=g-import-not-at-top  (other block formats: the reference code)
  try:
    qtype = gguf.GGMLQuantizationType[type_name]
    return np.asarray(gguf.quants.dequantize(raw_rows, qtype), np.float32).reshape(raw_rows.shape[0], row_values)
  except (NotImplementedError, KeyError):
    raise CheckpointError(f"GGUF tensor type {type_name} cannot be dequantised; re-quantise the model to "
                          f"one of {', '.join(dequant.DEQUANTISERS)}.") from None


class GGUFSource:
  """Tensors of one GGUF file with PyTorch-order shapes and row-range reads."""

  def __init__(self, path: str):
    self.path = path
    self.header = _open_header(path)
    self._tensors = self.header.tensors

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def close(self) -> None:
    """Each read maps and releases its own tensor; nothing to release here."""

  def names(self) -> list[str]:
    return list(self._tensors)

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(reversed(self._tensors[name].dims))

  def _qtype(self, name: str):
    import gguf  # pylint: disable=g-import-not-at-top
    kind = self._tensors[name].ggml_type
    try:
      return gguf.GGMLQuantizationType(kind)
    except ValueError:
      raise CheckpointError(f"GGUF tensor {name} has the unknown ggml type {kind}; convert the model again with "
                            "a current llama.cpp.") from None

  def type_name(self, name: str) -> str:
    return self._qtype(name).name

  def _raw_rows(self, name: str) -> np.ndarray:
    """The tensor's bytes as [rows, bytes per row] (memory-mapped: only what is indexed is read)."""
    import gguf  # pylint: disable=g-import-not-at-top
    shape = self.shape(name)
    block_values, block_bytes = gguf.GGML_QUANT_SIZES[self._qtype(name)]
    rows = math.prod(shape[:-1])
    row_bytes = shape[-1] // block_values * block_bytes
    return np.memmap(self.path, np.uint8, "r", offset=self._tensors[name].offset, shape=(rows, row_bytes))

  def read(self, name: str, slices: Sequence[slice]) -> np.ndarray:
    """float32 block `slices` of the tensor in PyTorch order; dequantises only the rows it needs."""
    shape = self.shape(name)
    row_values = shape[-1]
    raw, kind = self._raw_rows(name), self.type_name(name)
    if len(shape) == 1:
      return _dequantise(raw, kind, row_values).reshape(shape)[tuple(slices)]
    if len(shape) != 2:
      raise CheckpointError(f"GGUF tensor {name} has rank {len(shape)}; only vectors and matrices are expected.")
    row_slice = slices[0] if slices else slice(None)
    block = _dequantise(np.asarray(raw[row_slice]), kind, row_values)
    return block[(slice(None),) + tuple(slices[1:])]

  # -- metadata ------------------------------------------------------------
  def metadata(self, key: str, default: Any = None) -> Any:
    return self.header.metadata.get(key, default)

  def model_config(self) -> ModelConfig:
    return model_config_from_gguf(self)


def _infer_llama3_scaling(source: GGUFSource, base: ModelConfig) -> RopeScaling:
  """llama.cpp stores Llama-3 RoPE scaling as per-frequency divisors (`rope_freqs.weight`); recover its parameters."""
  factors = source.read("rope_freqs.weight", (slice(None),)).astype(np.float64)
  arch = base.family
  candidate = RopeScaling(
      factor=float(source.metadata(f"{arch}.rope.scaling.factor", factors.max())),
      low_freq_factor=1.0, high_freq_factor=4.0,
      original_max_position=int(source.metadata(f"{arch}.rope.scaling.original_context_length", 8192)))
  plain = np.asarray(rope_inverse_frequencies(base.replace(rope_scaling=None)))
  scaled = np.asarray(rope_inverse_frequencies(base.replace(rope_scaling=candidate)))
  if factors.shape != plain.shape or not np.allclose(plain / scaled, factors, rtol=1e-4):
    raise CheckpointError(f"{source.path} has RoPE frequency factors (rope_freqs.weight) that are not Llama-3 "
                          f"scaling with factor {candidate.factor}, low 1, high 4; convert it from the HF folder.")
  return candidate


def _f32(value) -> float:
  """GGUF stores floats as float32: 1e-5 reads back as 9.9999997e-06; keep the shortest decimal that round-trips."""
  return float(str(np.float32(value)))


def model_config_from_gguf(source: GGUFSource) -> ModelConfig:
  arch = source.metadata("general.architecture")
  if arch not in FAMILIES:
    raise CheckpointError(f"{source.path} is a {arch!r} GGUF; inoc_jax loads {', '.join(FAMILIES)} (SmolLM2 is "
                          "llama).")
  meta = lambda key, default=None: source.metadata(f"{arch}.{key}", default)  # noqa: E731
  scaling_type = meta("rope.scaling.type")
  if scaling_type not in (None, "none"):
    raise CheckpointError(f"{source.path} uses RoPE scaling {scaling_type!r}, which inoc_jax does not implement.")
  names = set(source.names())
  d_model, heads = int(meta("embedding_length")), int(meta("attention.head_count"))
  vocab = meta("vocab_size")
  if vocab is None:
    vocab = source.shape("token_embd.weight")[0]
  tokens = lambda key: source.metadata(f"tokenizer.ggml.{key}")  # noqa: E731
  eos = [tokens("eos_token_id"), tokens("eot_token_id")]
  cfg = ModelConfig(
      family=arch,
      vocab_size=int(vocab),
      d_model=d_model,
      num_layers=int(meta("block_count")),
      num_heads=heads,
      num_kv_heads=int(meta("attention.head_count_kv", heads)),
      head_dim=int(meta("attention.key_length", d_model // heads)),
      mlp_dim=int(meta("feed_forward_length")),
      activation="gelu_tanh" if arch == "gemma" else "silu",
      norm_eps=_f32(meta("attention.layer_norm_rms_epsilon", 1e-6)),
      norm_plus_one=arch == "gemma",
      embed_scale=arch == "gemma",
      qkv_bias="blk.0.attn_q.bias" in names,
      tie_embeddings="output.weight" not in names,
      rope_theta=_f32(meta("rope.freq_base", 10000.0)),
      max_seq_len=int(meta("context_length", 2048)),
      bos_token_id=None if tokens("bos_token_id") is None else int(tokens("bos_token_id")),
      eos_token_ids=tuple(dict.fromkeys(int(e) for e in eos if e is not None)),
      pad_token_id=None if tokens("padding_token_id") is None else int(tokens("padding_token_id")),
  )
  if "rope_freqs.weight" in names:
    cfg = cfg.replace(rope_scaling=_infer_llama3_scaling(source, cfg))
  return cfg
