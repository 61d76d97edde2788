"""LoRA / rsLoRA adapter configuration and pure helpers.

Adapters live inside `Projection` (see layers.py) as `nnx.LoRAParam` leaves, so
`nnx.split(model, nnx.LoRAParam, ...)` separates trainable adapters from the
frozen base weights and the optimizer only ever sees the adapters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Iterable

import jax
import jax.numpy as jnp

from inoc_jax.errors import ConfigError

# Projection names a LoRA target may use, as in PEFT's `target_modules`.
ALL_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """Adapter shape and scaling.

  Attributes:
    rank: r, the inner dimension of A [in, r] and B [r, out].
    alpha: LoRA alpha.
    dropout: dropout on the adapter input during training (PEFT semantics).
    rslora: scale by alpha / sqrt(r) (rank-stabilised LoRA) instead of alpha / r.
    targets: which projections carry adapters, subset of ALL_TARGETS.
  """

  rank: int = 8
  alpha: float = 16.0
  dropout: float = 0.0
  rslora: bool = True
  targets: tuple[str, ...] = ALL_TARGETS

  def __post_init__(self):
    if self.rank <= 0:
      raise ConfigError(f"lora.rank must be positive, got {self.rank}; set --config.lora.rank=8 or disable LoRA.")
    if not 0.0 <= self.dropout < 1.0:
      raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout}.")
    unknown = sorted(set(self.targets) - set(ALL_TARGETS))
    if unknown:
      raise ConfigError(f"Unknown LoRA targets {unknown}; use a subset of {','.join(ALL_TARGETS)}.")

  @property
  def scale(self) -> float:
    return self.alpha / (math.sqrt(self.rank) if self.rslora else self.rank)


def parse_targets(spec: str | Iterable[str]) -> tuple[str, ...]:
  """'q,k,v' or ['q', 'v'] or 'all' -> ('q', 'k', 'v')."""
  if isinstance(spec, str):
    if spec.strip() == "all":
      return ALL_TARGETS
    spec = [s for s in spec.replace(" ", "").split(",") if s]
  return tuple(spec)


def count_lora_params(model_cfg, lora: LoraConfig) -> int:
  """Trainable parameters of the adapters: r * (in + out) per adapted matrix."""
  d, h, f = model_cfg.d_model, model_cfg.head_dim, model_cfg.mlp_dim
  shapes = {
      "q": (d, model_cfg.num_heads * h),
      "k": (d, model_cfg.num_kv_heads * h),
      "v": (d, model_cfg.num_kv_heads * h),
      "o": (model_cfg.num_heads * h, d),
      "gate": (d, f),
      "up": (d, f),
      "down": (f, d),
  }
  per_layer = sum(lora.rank * (shapes[t][0] + shapes[t][1]) for t in lora.targets)
  return per_layer * model_cfg.num_layers


def lora_matmul(x: jax.Array, adapter_in: jax.Array, kernel: jax.Array, a: jax.Array, b: jax.Array,
                scale: float) -> jax.Array:
  """x @ kernel + scale · (adapter_in @ a) @ b, with the kernel frozen.

  The gradient is written out rather than left to autodiff, for two reasons
  measured on XLA:CPU (BUILD_NOTES "Performance"): the forward pass saves only
  the rank-r activations beside its inputs (autodiff kept both [tokens, out]
  products), and the backward pass forms each adapter gradient with the
  tokens as the contracting axis of both operands, which XLA runs as one GEMM
  on the cotangent as it lies (autodiff's transposed form made it copy the
  [tokens, out] cotangent into [out, tokens] first). No gradient flows to
  `kernel`: callers use this only for the frozen base of a LoRA projection.

  Args:
    x: [tokens, in] input of the base projection.
    adapter_in: [tokens, in] input of the adapter (x, or x after LoRA dropout).
    kernel: [in, out] frozen base weight; a: [in, r]; b: [r, out].
    scale: alpha / r (or alpha / sqrt(r) for rsLoRA).
  Returns:
    [tokens, out].
  """
  return _lora_matmul(scale, x, adapter_in, jax.lax.stop_gradient(kernel), a, b)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lora_matmul(scale, x, adapter_in, kernel, a, b):
  down = (adapter_in @ a) * jnp.asarray(scale, x.dtype)
  return x @ kernel + down @ b


def _lora_matmul_forward(scale, x, adapter_in, kernel, a, b):
  down = (adapter_in @ a) * jnp.asarray(scale, x.dtype)
  return x @ kernel + down @ b, (adapter_in, kernel, a, b, down)


def _lora_matmul_backward(scale, residuals, d_out):
  adapter_in, kernel, a, b, down = residuals
  d_down = jnp.einsum("tu,ru->tr", d_out, b) * jnp.asarray(scale, d_out.dtype)   # [tokens, r]
  d_a = jnp.einsum("ti,tr->ir", adapter_in, d_down)                               # [in, r]
  d_b = jnp.einsum("tr,tu->ru", down, d_out)                                      # [r, out]
  d_x = jnp.einsum("tu,iu->ti", d_out, kernel)                                    # [tokens, in]
  d_adapter_in = jnp.einsum("tr,ir->ti", d_down, a)
  return d_x, d_adapter_in, jnp.zeros_like(kernel), d_a.astype(a.dtype), d_b.astype(b.dtype)


_lora_matmul.defvjp(_lora_matmul_forward, _lora_matmul_backward)
