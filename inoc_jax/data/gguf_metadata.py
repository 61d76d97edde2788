"""The key/value metadata of a GGUF file, read in one pass without the tensors.

Why not `gguf.GGUFReader`: it builds a memory-mapped numpy view per array
element, so SmolLM2's 49,152 tokens and 48,900 merges take ~4 s to parse; the
tokenizer needs only these values, which a sequential read gives in a fraction
of a second. Format (GGUF v2/v3, little-endian): magic "GGUF", u32 version, u64
tensor count, u64 key/value count, then per key: a string (u64 length + UTF-8
bytes), a u32 value type and the value; arrays are a u32 item type, a u64 count
and the items.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

# GGUF value type -> numpy dtype of a scalar (or array item); 8 = string, 9 = array.
_NUMERIC = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8",
            12: "<f8"}
_STRING, _ARRAY = 8, 9


class GGUFFormatError(ValueError):
  """The bytes are not GGUF metadata (wrong magic, an unknown type, or the file ends early)."""


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

  Reads the file only up to the end of its metadata (~2 MB for SmolLM2's vocabulary).
  Raises GGUFFormatError if the file is not GGUF or is cut short.
  """
  with open(path, "rb") as f:
    head = _Cursor(f.read(24))
    if head.take(4) != b"GGUF":
      raise GGUFFormatError("it does not start with the GGUF magic bytes")
    version, _, kv_count = head.unpack("<I"), head.unpack("<Q"), head.unpack("<Q")
    size, data = 1 << 20, b""
    while True:  # read more until every key/value parses (the metadata size is not in the header)
      chunk = f.read(size)
      data += chunk
      cursor = _Cursor(data)
      try:
        metadata = {"GGUF.version": version}
        for _ in range(kv_count):
          key = cursor.string()
          metadata[key] = cursor.value(cursor.unpack("<I"))
        return metadata
      except GGUFFormatError:
        if not chunk:
          raise
        size *= 2
