"""numpy dequantisers for GGML block formats (the layouts of ggml-quants.c).

Every function takes the raw bytes of whole rows, uint8 [rows, bytes_per_row],
and returns float32 [rows, values_per_row]. Rows are independent, so a loader
dequantises only the rows of the shard it needs. Results equal
`gguf.quants.dequantize` bit for bit (tested).

Block layouts (little endian, f16 = IEEE half):
  Q4_0  32 values, 18 bytes: d f16, 16 x (two 4-bit q); x = d * (q - 8)
  Q4_1  32 values, 20 bytes: d f16, m f16, 16 x (two 4-bit q); x = d * q + m
  Q5_0  32 values, 22 bytes: d f16, qh u32 (5th bits), 16 x nibbles; x = d * (q - 16)
  Q5_1  32 values, 24 bytes: d f16, m f16, qh u32, 16 x nibbles; x = d * q + m
  Q8_0  32 values, 34 bytes: d f16, 32 x int8; x = d * q
  Q4_K 256 values, 144 bytes: d, dmin f16, 12 bytes of 6-bit (scale, min) x 8, 128 x nibbles
  Q6_K 256 values, 210 bytes: 128 low nibbles, 64 x 2-bit highs, 16 x int8 scales, d f16
In the 32-value formats the low nibbles of the 16 bytes are values 0..15 and the
high nibbles values 16..31.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _blocks(raw: np.ndarray, block_bytes: int) -> tuple[np.ndarray, int]:
  raw = np.ascontiguousarray(raw, dtype=np.uint8)
  rows = raw.shape[0]
  return raw.reshape(rows, -1, block_bytes), rows


def _f16(b: np.ndarray) -> np.ndarray:
  """[..., 2] bytes -> float32 [..., 1]."""
  return np.ascontiguousarray(b).view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
  """[..., 16] bytes -> [..., 32] values (low nibbles first)."""
  return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _high_bits(qh: np.ndarray) -> np.ndarray:
  """[..., 4] bytes of a little-endian u32 -> [..., 32] bits (bit j is value j's 5th bit)."""
  bits = np.unpackbits(qh, axis=-1, bitorder="little")
  return bits.astype(np.uint8)


def q4_0(raw: np.ndarray) -> np.ndarray:
  b, rows = _blocks(raw, 18)
  d, q = _f16(b[..., :2]), _nibbles(b[..., 2:]).astype(np.int8) - np.int8(8)
  return (d * q.astype(np.float32)).reshape(rows, -1)


def q4_1(raw: np.ndarray) -> np.ndarray:
  b, rows = _blocks(raw, 20)
  d, m, q = _f16(b[..., :2]), _f16(b[..., 2:4]), _nibbles(b[..., 4:])
  return (d * q.astype(np.float32) + m).reshape(rows, -1)


def q5_0(raw: np.ndarray) -> np.ndarray:
  b, rows = _blocks(raw, 22)
  d = _f16(b[..., :2])
  q = (_nibbles(b[..., 6:]) | (_high_bits(b[..., 2:6]) << 4)).astype(np.int8) - np.int8(16)
  return (d * q.astype(np.float32)).reshape(rows, -1)


def q5_1(raw: np.ndarray) -> np.ndarray:
  b, rows = _blocks(raw, 24)
  d, m = _f16(b[..., :2]), _f16(b[..., 2:4])
  q = _nibbles(b[..., 8:]) | (_high_bits(b[..., 4:8]) << 4)
  return (d * q.astype(np.float32) + m).reshape(rows, -1)


def q8_0(raw: np.ndarray) -> np.ndarray:
  b, rows = _blocks(raw, 34)
  d, q = _f16(b[..., :2]), b[..., 2:].view(np.int8)
  return (d * q.astype(np.float32)).reshape(rows, -1)


def _k4_scales_mins(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """12 bytes -> 8 six-bit scales and 8 six-bit mins ([..., 8] each)."""
  p = packed.astype(np.uint8)
  lo_sc, lo_m, hi = p[..., 0:4], p[..., 4:8], p[..., 8:12]
  scales = np.concatenate([lo_sc & 63, (hi & 0x0F) | ((lo_sc >> 6) << 4)], axis=-1)
  mins = np.concatenate([lo_m & 63, (hi >> 4) | ((lo_m >> 6) << 4)], axis=-1)
  return scales.astype(np.float32), mins.astype(np.float32)


def q4_k(raw: np.ndarray) -> np.ndarray:
  b, rows = _blocks(raw, 144)
  d, dmin = _f16(b[..., 0:2]), _f16(b[..., 2:4])
  scales, mins = _k4_scales_mins(b[..., 4:16])
  qs = b[..., 16:].reshape(b.shape[:2] + (4, 32))              # 4 chunks of 32 bytes = 64 values each
  q = np.stack([qs & 0x0F, qs >> 4], axis=-2).reshape(b.shape[:2] + (8, 32)).astype(np.float32)
  out = (d * scales)[..., None] * q - (dmin * mins)[..., None]
  return out.reshape(rows, -1)


def q6_k(raw: np.ndarray) -> np.ndarray:
  b, rows = _blocks(raw, 210)
  ql = b[..., :128].reshape(b.shape[:2] + (2, 64))
  qh = b[..., 128:192].reshape(b.shape[:2] + (2, 32))
  scales = b[..., 192:208].view(np.int8).astype(np.float32).reshape(b.shape[:2] + (16,))
  d = _f16(b[..., 208:210])
  # Within each half of 128 values: 4 groups of 32, low nibbles from ql[0:32], ql[32:64],
  # high nibbles of ql[0:32], ql[32:64]; 2-bit highs from qh shifted by 0, 2, 4, 6.
  low = np.stack([ql[..., :32] & 0x0F, ql[..., 32:] & 0x0F, ql[..., :32] >> 4, ql[..., 32:] >> 4], axis=-2)
  high = np.stack([(qh >> s) & 3 for s in (0, 2, 4, 6)], axis=-2)
  q = (low | (high << 4)).astype(np.int8) - np.int8(32)        # [rows, blocks, 2, 4, 32]
  q = q.reshape(b.shape[:2] + (16, 16)).astype(np.float32)       # 16 sub-blocks of 16 values
  return (d[..., None] * scales[..., None] * q).reshape(rows, -1)


def f32(raw: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(raw).view(np.float32).reshape(raw.shape[0], -1)


def f16(raw: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(raw).view(np.float16).astype(np.float32).reshape(raw.shape[0], -1)


def bf16(raw: np.ndarray) -> np.ndarray:
  as_u16 = np.ascontiguousarray(raw).view(np.uint16).astype(np.uint32) << 16
  return as_u16.view(np.float32).reshape(raw.shape[0], -1)


# GGMLQuantizationType name -> dequantiser.
DEQUANTISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "F32": f32, "F16": f16, "BF16": bf16, "Q4_0": q4_0, "Q4_1": q4_1, "Q5_0": q5_0, "Q5_1": q5_1,
    "Q8_0": q8_0, "Q4_K": q4_k, "Q6_K": q6_k,
}
