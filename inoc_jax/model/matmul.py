"""The LoRA projection matmul with its gradient written out.

XLA:CPU derives a LoRA projection's backward pass from autodiff's transposed
dots, and on the shapes of a training step ([tokens, in] x [in, out], tokens
>> r) it then copies the [tokens, out] cotangent into [out, tokens] before an
adapter gradient's GEMM, and keeps both [tokens, out] products alive for the
backward pass (BUILD_NOTES "Performance"). Here each gradient is one einsum
with the tokens as the contracting axes of both operands, which XLA runs as a
single GEMM on the cotangent as it lies. (The same treatment of a trained
kernel sped up full fine-tuning on CPU but doubled the compiled peak of an
FSDP-sharded 7B step, so full fine-tuning keeps autodiff.)

A quantised frozen kernel (model/quantization.py) comes in as its stored
(codes, scales) with a static `dequant`; both passes dequantise it where they
need it, so the backward pass keeps the small stored form, not a dense copy.

Kernels keep their structured shapes ([*in, *out], e.g. q: [d_model, heads,
head_dim]); `n_in` says how many leading kernel axes are inputs. Activations
are [..., *in] -> [..., *out], the leading axes (batch, sequence) being the
tokens. No reshape is needed, so the sharding of every named axis carries over.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


_IN, _OUT = "ijkl", "uvwx"


def axis_letters(n_in: int, kernel_ndim: int) -> tuple[str, str]:
  """einsum letters of a kernel's input and output axes, e.g. (1, 3) -> ('i', 'uv')."""
  return _IN[:n_in], _OUT[:kernel_ndim - n_in]


def lora_matmul(x: jax.Array, adapter_in: jax.Array, kernel, a: jax.Array, b: jax.Array,
                scale: float, n_in: int, dequant: Callable | None = None) -> jax.Array:
  """x @ kernel + scale · (adapter_in @ a) @ b, with the kernel frozen.

  The forward pass saves only the rank-r activations beside its inputs. No
  gradient flows to `kernel`: callers use this for the frozen base of a LoRA
  projection.

  Args:
    x: [..., *in] input of the base projection.
    adapter_in: [..., *in] input of the adapter (x, or x after LoRA dropout).
    kernel: [*in, *out] frozen base weight, or its stored form when `dequant` is given; a: [*in, r];
      b: [r, *out].
    scale: alpha / r (or alpha / sqrt(r) for rsLoRA).
    n_in: how many leading kernel axes are inputs.
    dequant: hashable stored kernel -> dense [*in, *out] (quantization.Dequantizer), or None.
  Returns:
    [..., *out].
  """
  return _lora_matmul(scale, n_in, dequant, x, adapter_in, jax.lax.stop_gradient(kernel), a, b)


def _dense(kernel, dequant):
  return kernel if dequant is None else dequant(kernel)


def _no_cotangent(kernel):
  """Zero cotangents for a frozen kernel's leaves (float0 for integer codes)."""
  def zero(leaf):
    if jnp.issubdtype(leaf.dtype, jnp.inexact):
      return jnp.zeros_like(leaf)
    return np.zeros(leaf.shape, jax.dtypes.float0)
  return jax.tree.map(zero, kernel)


def _lora_forward_values(scale, n_in, dequant, x, adapter_in, kernel, a, b):
  kernel = _dense(kernel, dequant)
  ins, outs = axis_letters(n_in, kernel.ndim)
  down = jnp.einsum(f"...{ins},{ins}r->...r", adapter_in, a) * jnp.asarray(scale, x.dtype)
  y = jnp.einsum(f"...{ins},{ins}{outs}->...{outs}", x, kernel) + jnp.einsum(f"...r,r{outs}->...{outs}", down, b)
  return y, down


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _lora_matmul(scale, n_in, dequant, x, adapter_in, kernel, a, b):
  return _lora_forward_values(scale, n_in, dequant, x, adapter_in, kernel, a, b)[0]


def _lora_matmul_forward(scale, n_in, dequant, x, adapter_in, kernel, a, b):
  y, down = _lora_forward_values(scale, n_in, dequant, x, adapter_in, kernel, a, b)
  return y, (adapter_in, kernel, a, b, down)


def _lora_matmul_backward(scale, n_in, dequant, residuals, d_out):
  adapter_in, stored, a, b, down = residuals
  kernel = _dense(stored, dequant)
  ins, outs = axis_letters(n_in, kernel.ndim)
  d_down = jnp.einsum(f"...{outs},r{outs}->...r", d_out, b) * jnp.asarray(scale, d_out.dtype)
  d_a = jnp.einsum(f"...{ins},...r->{ins}r", adapter_in, d_down)
  d_b = jnp.einsum(f"...r,...{outs}->r{outs}", down, d_out)
  d_x = jnp.einsum(f"...{outs},{ins}{outs}->...{ins}", d_out, kernel)
  d_adapter_in = jnp.einsum(f"...r,{ins}r->...{ins}", d_down, a)
  return d_x, d_adapter_in, _no_cotangent(stored), d_a.astype(a.dtype), d_b.astype(b.dtype)


_lora_matmul.defvjp(_lora_matmul_forward, _lora_matmul_backward)


def frozen_matmul(x: jax.Array, stored, dequant: Callable, n_in: int) -> jax.Array:
  """x [..., *in] @ dequant(stored) [*in, *out] for a quantised kernel without an adapter.

  Autodiff would keep the dense kernel for the input gradient; this keeps the stored form and
  dequantises it again in the backward pass.
  """
  return _frozen_matmul(n_in, dequant, x, jax.lax.stop_gradient(stored))


def _frozen_product(n_in, x, kernel):
  ins, outs = axis_letters(n_in, kernel.ndim)
  return jnp.einsum(f"...{ins},{ins}{outs}->...{outs}", x, kernel)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _frozen_matmul(n_in, dequant, x, stored):
  return _frozen_product(n_in, x, dequant(stored))


def _frozen_matmul_forward(n_in, dequant, x, stored):
  return _frozen_product(n_in, x, dequant(stored)), stored


def _frozen_matmul_backward(n_in, dequant, stored, d_out):
  kernel = dequant(stored)
  ins, outs = axis_letters(n_in, kernel.ndim)
  return jnp.einsum(f"...{outs},{ins}{outs}->...{ins}", d_out, kernel), _no_cotangent(stored)


_frozen_matmul.defvjp(_frozen_matmul_forward, _frozen_matmul_backward)
