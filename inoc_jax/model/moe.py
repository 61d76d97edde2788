"""A mixture of gated-MLP experts (Qwen3-MoE) with dropless top-k routing and optional LoRA on every expert.

Each token's router probabilities (softmax in float32 over `num_experts`) pick its
`experts_per_token` experts; with `norm_top_k` their probabilities are rescaled to
sum to 1. Computation is dropless and sparse: the (token, expert) assignments are
sorted by expert and every projection is one `jax.lax.ragged_dot` over the sorted
rows (a grouped matmul: rows of group e times expert e's kernel), so each expert
runs on exactly its tokens, with no capacity factor and no dropped tokens.

Parameter tree (under a block's `mlp/`):

  router/kernel                        [d_model, num_experts]
  experts/{gate,up}_proj/kernel        [num_experts, d_model, expert_mlp_dim]
  experts/down_proj/kernel             [num_experts, expert_mlp_dim, d_model]
  experts/*/lora_a, lora_b             [num_experts, in, r], [num_experts, r, out]   (LoRA)

The router is a frozen base weight under LoRA (PEFT's `target_modules` never
name it either) and trained with everything else in full fine-tuning.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from inoc_jax.model.config import ModelConfig
from inoc_jax.model.layers import Projection
from inoc_jax.model.lora import LoraConfig


class ExpertProjection(nnx.Module):
  """Per-expert kernels [E, in, out] (+ per-expert LoRA A [E, in, r], B [E, r, out]) applied to sorted rows."""

  def __init__(self, num_experts: int, d_in: int, d_out: int, *, lora: LoraConfig | None, dtype, param_dtype,
               rngs: nnx.Rngs):
    self.dtype, self.lora = dtype, lora
    self.kernel = nnx.Param(jax.random.normal(rngs.params(), (num_experts, d_in, d_out), param_dtype)
                            / math.sqrt(d_in))
    if lora is not None:
      bound = 1.0 / math.sqrt(d_in)
      self.lora_a = nnx.LoRAParam(jax.random.uniform(rngs.params(), (num_experts, d_in, lora.rank), jnp.float32,
                                                     -bound, bound))
      self.lora_b = nnx.LoRAParam(jnp.zeros((num_experts, lora.rank, d_out), jnp.float32))

  def __call__(self, rows: jax.Array, group_sizes: jax.Array, dropout_rng: jax.Array | None = None) -> jax.Array:
    """rows [N, in] sorted by expert, group_sizes [E] (sum N) -> [N, out]."""
    rows = rows.astype(self.dtype)
    kernel = self.kernel[...].astype(self.dtype)
    if self.lora is not None:
      kernel = jax.lax.stop_gradient(kernel)
    out = jax.lax.ragged_dot(rows, kernel, group_sizes)
    if self.lora is None:
      return out
    adapter_in = rows
    if self.lora.dropout > 0.0 and dropout_rng is not None:
      keep = jax.random.bernoulli(dropout_rng, 1.0 - self.lora.dropout, rows.shape)
      adapter_in = jnp.where(keep, rows / (1.0 - self.lora.dropout), 0.0).astype(self.dtype)
    down = jax.lax.ragged_dot(adapter_in, self.lora_a[...].astype(self.dtype), group_sizes)
    up = jax.lax.ragged_dot(down * jnp.asarray(self.lora.scale, self.dtype), self.lora_b[...].astype(self.dtype),
                            group_sizes)
    return out + up

  def merged_kernel(self) -> jax.Array:
    """[E, in, out] with each expert's adapter folded in (export, fast sampling)."""
    kernel = self.kernel[...]
    if self.lora is None:
      return kernel
    delta = jnp.einsum("eir,ero->eio", self.lora_a[...], self.lora_b[...]) * self.lora.scale
    return (kernel + delta).astype(kernel.dtype)


def route(logits: jax.Array, k: int, normalise: bool) -> tuple[jax.Array, jax.Array]:
  """Router logits [N, E] -> (weights [N, k] float32, expert ids [N, k]): top-k of the softmax probabilities."""
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  weights, experts = jax.lax.top_k(probs, k)
  if normalise:
    weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
  return weights, experts


class MoEMLP(nnx.Module):
  """sum over the chosen experts e of weight_e * down_e(act(gate_e(x)) * up_e(x)), per token."""

  def __init__(self, cfg: ModelConfig, *, lora: LoraConfig | None, dtype, param_dtype, rngs: nnx.Rngs):
    self.num_experts, self.k, self.normalise = cfg.num_experts, cfg.experts_per_token, cfg.norm_top_k
    self.activation, self.dtype = cfg.activation, dtype
    self.router = Projection((cfg.d_model,), (cfg.num_experts,), dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def proj(name, d_in, d_out):
      adapter = lora if (lora is not None and name in lora.targets) else None
      return ExpertProjection(cfg.num_experts, d_in, d_out, lora=adapter, dtype=dtype, param_dtype=param_dtype,
                              rngs=rngs)

    self.experts = nnx.Dict(gate_proj=proj("gate", cfg.d_model, cfg.expert_mlp_dim),
                            up_proj=proj("up", cfg.d_model, cfg.expert_mlp_dim),
                            down_proj=proj("down", cfg.expert_mlp_dim, cfg.d_model))

  def __call__(self, x: jax.Array, dropout_rng: jax.Array | None = None) -> jax.Array:
    """x [..., d_model] -> [..., d_model]."""
    shape = x.shape
    tokens = x.reshape(-1, shape[-1]).astype(self.dtype)
    weights, experts = route(self.router(tokens), self.k, self.normalise)
    flat = experts.reshape(-1)                                   # [N * k], token-major
    order = jnp.argsort(flat, stable=True)                       # assignments grouped by expert
    token_of = order // self.k
    group_sizes = jnp.bincount(flat, length=self.num_experts).astype(jnp.int32)
    rows = tokens[token_of]                                      # [N * k, d_model]
    keys = [None] * 3 if dropout_rng is None else list(jax.random.split(dropout_rng, 3))
    gate = self.experts["gate_proj"](rows, group_sizes, keys[0])
    gate = jax.nn.silu(gate) if self.activation == "silu" else jax.nn.gelu(gate, approximate=True)
    hidden = gate * self.experts["up_proj"](rows, group_sizes, keys[1])
    out = self.experts["down_proj"](hidden, group_sizes, keys[2])
    out = out * weights.reshape(-1)[order][:, None].astype(out.dtype)
    combined = jnp.zeros_like(tokens).at[token_of].add(out)
    return combined.reshape(shape)
