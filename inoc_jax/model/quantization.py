"""Quantised storage of a LoRA run's frozen base kernels (QLoRA): int8 and NF4.

LoRA never updates the base kernels, so they can be stored in fewer bits and
dequantised inside each projection's matmul, forward and backward (QLoRA,
Dettmers et al. 2023). Both formats are symmetric absmax:

  int8  codes int8 [*in, *out] = round(w / s); one float32 scale s per output
        channel, [1, ..., 1, *out] = absmax over the input axes / 127.
        1 byte + 4 / fan_in bytes per weight.
  nf4   4-bit NormalFloat: 16 levels at quantiles of N(0, 1), scaled to [-1, 1],
        with an exact 0. Each block of `block_size` consecutive weights along the
        kernel's last input axis shares one float32 absmax; a weight's code is its
        nearest level after division by that absmax. Two codes per uint8, packed
        along the same axis: codes uint8 [*in[:-1], in[-1] / 2, *out], scales
        float32 [*in[:-1], in[-1] / block_size, *out]. 0.5 + 4 / block_size bytes
        per weight (QLoRA's second quantisation of the scales is not done).

Every stored array keeps its kernel's rank and axis order, so the kernel's sharding
rule applies to its codes and scales alike.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy.special import ndtri

from inoc_jax.errors import ConfigError

KINDS = ("int8", "nf4")


class QuantizedWeight(nnx.Variable):
  """A frozen kernel's codes or scales: never trained, never a float `nnx.Param`."""


@dataclasses.dataclass(frozen=True)
class QuantConfig:
  """kind: 'int8' | 'nf4'; block_size: NF4 weights per absmax (even; divides each kernel's last input axis)."""

  kind: str
  block_size: int = 64

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ConfigError(f"model.base_quant must be none, int8 or nf4, not {self.kind!r}.")
    if self.kind == "nf4" and (self.block_size < 2 or self.block_size % 2):
      raise ConfigError(f"model.quant_block_size must be an even number >= 2, got {self.block_size}.")

  def check_axis(self, size: int, where: str) -> None:
    """NF4 blocks run along a kernel's last input axis, so they must tile it."""
    if self.kind == "nf4" and size % self.block_size:
      raise ConfigError(f"NF4 blocks of model.quant_block_size={self.block_size} do not tile {where} ({size}); "
                        "set model.quant_block_size to an even divisor of it or use model.base_quant=int8.")

  def bytes_per_weight(self, fan_in: int) -> float:
    return 1.0 + 4.0 / fan_in if self.kind == "int8" else 0.5 + 4.0 / self.block_size


def nf4_levels() -> np.ndarray:
  """The 16 NF4 levels, ascending in [-1, 1] with an exact 0.

  QLoRA's construction: 8 positive and 7 negative quantiles of N(0, 1), taken at
  evenly spaced probabilities from 1 - delta to 1/2 (delta = (1/32 + 1/30) / 2, so
  the extreme quantiles stay finite), plus 0, each half normalised by its largest
  magnitude. Asymmetric so that 0 is a level and 16 codes are all used.
  """
  top = 1.0 - (1.0 / 32 + 1.0 / 30) / 2
  positive = ndtri(np.linspace(top, 0.5, 9)[:-1])
  negative = -ndtri(np.linspace(top, 0.5, 8)[:-1])
  levels = np.sort(np.concatenate([positive, negative, [0.0]]))
  return (levels / levels.max()).astype(np.float32)


_NF4 = nf4_levels()
_NF4_MIDPOINTS = (_NF4[1:] + _NF4[:-1]) / 2


def _blocks(w: jax.Array, n_in: int, block: int) -> jax.Array:
  """[*in, *out] -> [*in[:-1], in[-1] / block, block, *out]."""
  k = n_in - 1
  return w.reshape(w.shape[:k] + (w.shape[k] // block, block) + w.shape[k + 1:])


def _pack(codes: jax.Array, axis: int) -> jax.Array:
  """uint8 codes < 16 -> two per byte along `axis` (first in the high nibble)."""
  pairs = codes.reshape(codes.shape[:axis] + (codes.shape[axis] // 2, 2) + codes.shape[axis + 1:])
  high, low = jnp.take(pairs, 0, axis=axis + 1), jnp.take(pairs, 1, axis=axis + 1)
  return (high << 4) | low


def _unpack(packed: jax.Array, axis: int) -> jax.Array:
  pairs = jnp.stack([packed >> 4, packed & 0xF], axis=axis + 1)
  return pairs.reshape(packed.shape[:axis] + (packed.shape[axis] * 2,) + packed.shape[axis + 1:])


def quantize(kernel: jax.Array, quant: QuantConfig, n_in: int) -> tuple[jax.Array, jax.Array]:
  """Kernel [*in, *out] (n_in input axes) -> (codes, scales) as in the module docstring."""
  w = kernel.astype(jnp.float32)
  if quant.kind == "int8":
    scale = jnp.max(jnp.abs(w), axis=tuple(range(n_in)), keepdims=True) / 127.0
    codes = jnp.clip(jnp.round(w / jnp.where(scale == 0, 1.0, scale)), -127, 127).astype(jnp.int8)
    return codes, scale
  blocks = _blocks(w, n_in, quant.block_size)
  absmax = jnp.max(jnp.abs(blocks), axis=n_in, keepdims=True)
  normed = blocks / jnp.where(absmax == 0, 1.0, absmax)
  codes = jnp.searchsorted(jnp.asarray(_NF4_MIDPOINTS), normed).astype(jnp.uint8).reshape(w.shape)
  return _pack(codes, n_in - 1), jnp.squeeze(absmax, n_in)


def dequantize(codes: jax.Array, scales: jax.Array, quant: QuantConfig, n_in: int, dtype) -> jax.Array:
  """(codes, scales) -> the kernel [*in, *out] in `dtype` (scaled in float32, then rounded once)."""
  if quant.kind == "int8":
    return (codes.astype(jnp.float32) * scales).astype(dtype)
  values = jnp.asarray(_NF4)[_unpack(codes, n_in - 1)]
  blocks = _blocks(values, n_in, quant.block_size) * jnp.expand_dims(scales, n_in)
  return blocks.reshape(values.shape).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Dequantizer:
  """The static half of a quantised kernel: (codes, scales) -> dense [*in, *out] in `dtype`.

  Hashable, so the LoRA matmul's custom VJP takes it as a static argument and
  dequantises again in its backward pass instead of saving the dense kernel.
  """

  quant: QuantConfig
  n_in: int
  dtype: str

  def __call__(self, stored: tuple[jax.Array, jax.Array]) -> jax.Array:
    return dequantize(*stored, self.quant, self.n_in, jnp.dtype(self.dtype))


@functools.partial(jax.jit, static_argnames=("quant", "n_in"))
def quantize_jitted(kernel: jax.Array, quant: QuantConfig, n_in: int) -> tuple[jax.Array, jax.Array]:
  """`quantize` compiled once per kernel shape (the weight loader quantises leaf by leaf)."""
  return quantize(kernel, quant, n_in)
