"""The header of a GGUF file (key/value metadata and tensor table), read in one sequential pass.

Why not `gguf.GGUFReader`: it builds a memory-mapped numpy view per array
element, so SmolLM2's 49,152 tokens and 48,900 merges take ~4 s to parse; the
tokenizer and the weight loader need only the values and the tensor offsets,
which a sequential read gives in a fraction of a second. Format (GGUF v2/v3,
little-endian): magic "GGUF", u32 version, u64 tensor count, u64 key/value
count; per key a string (u64 length + UTF-8 bytes), a u32 value type and the
value (arrays: u32 item type, u64 count, items); per tensor its name, u32 rank,
u64 dims (fastest-varying first), u32 ggml type and u64 offset into the data
section, which starts at the next multiple of `general.alignment` (32).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import numpy as np

# GGUF value type -> numpy dtype of a scalar (or array item); 8 = string, 9 = array.
_NUMERIC = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8",
            12: "<f8"}
_STRING, _ARRAY = 8, 9


class GGUFFormatError(ValueError):
  """The bytes are not GGUF metadata (wrong magic, an unknown type, or the file ends early)."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  """One tensor of the table: `dims` in GGUF order (fastest-varying first), `offset` from the file's start."""

  dims: tuple[int, ...]
  ggml_type: int
  offset: int


@dataclasses.dataclass(frozen=True)
class GGUFHeader:
  metadata: dict[str, Any]
  tensors: dict[str, TensorInfo]


class _Cursor:
  def __init__(self, data: bytes):
    self.data, self.at = data, 0

  def take(self, n: int) -> bytes:
    if self.at + n > len(self.data):
      raise GGUFFormatError(f"the file ends inside its metadata (at byte {self.at}, {n} more wanted)")
    chunk = self.data[self.at:self.at + n]
    self.at += n
    return chunk

  def unpack(self, fmt: str):
    return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

  def string(self) -> str:
    return self.take(self.unpack("<Q")).decode("utf-8", errors="replace")

  def value(self, kind: int) -> Any:
    if kind == _STRING:
      return self.string()
    if kind == _ARRAY:
      item, count = self.unpack("<I"), self.unpack("<Q")
      if item == _STRING:
        return [self.string() for _ in range(count)]
      if item in _NUMERIC:
        dtype = np.dtype(_NUMERIC[item])
        return np.frombuffer(self.take(dtype.itemsize * count), dtype).tolist()
      return [self.value(item) for _ in range(count)]
    if kind not in _NUMERIC:
      raise GGUFFormatError(f"unknown metadata value type {kind}")
    dtype = np.dtype(_NUMERIC[kind])
    return np.frombuffer(self.take(dtype.itemsize), dtype)[0].item()


def read_metadata(path: str) -> dict[str, Any]:
  """{key: value} of a GGUF file's metadata (strings, numbers, bools, lists), plus "GGUF.version".

  Raises GGUFFormatError if the file is not GGUF or is cut short.
  """
  return read_header(path, tensors=False).metadata


def read_header(path: str, tensors: bool = True) -> GGUFHeader:
  """The metadata and (with `tensors`) the tensor table of a GGUF file.

  Reads the file only up to the end of its header (~2 MB for SmolLM2's vocabulary).
  Raises GGUFFormatError if the file is not GGUF or is cut short.
  """
  with open(path, "rb") as f:
    head = _Cursor(f.read(24))
    if head.take(4) != b"GGUF":
      raise GGUFFormatError("it does not start with the GGUF magic bytes")
    version, tensor_count, kv_count = head.unpack("<I"), head.unpack("<Q"), head.unpack("<Q")
    size, data = 1 << 20, b""
    while True:  # read more until the header parses (its size is not stored)
      chunk = f.read(size)
      data += chunk
      try:
        return _parse(_Cursor(data), version, kv_count, tensor_count if tensors else 0)
      except GGUFFormatError:
        if not chunk:
          raise
        size *= 2


def _parse(cursor: _Cursor, version: int, kv_count: int, tensor_count: int) -> GGUFHeader:
  metadata: dict[str, Any] = {"GGUF.version": version}
  for _ in range(kv_count):
    key = cursor.string()
    metadata[key] = cursor.value(cursor.unpack("<I"))
  table = []
  for _ in range(tensor_count):
    name = cursor.string()
    dims = tuple(cursor.unpack("<Q") for _ in range(cursor.unpack("<I")))
    table.append((name, dims, cursor.unpack("<I"), cursor.unpack("<Q")))
  alignment = int(metadata.get("general.alignment", 32))
  data_start = 24 + cursor.at + (-(24 + cursor.at) % alignment)
  return GGUFHeader(metadata, {name: TensorInfo(dims, kind, data_start + offset)
                               for name, dims, kind, offset in table})
