"""Building blocks: projections (with optional LoRA), RMSNorm, embedding, gated MLP.

Kernels keep their structured shapes (e.g. q: [d_model, heads, head_dim]) so the
sharding rules can name the head axis, and every weight is stored in
`param_dtype` and cast to the compute `dtype` at use (bf16 compute with fp32
master weights).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.matmul import axis_letters, frozen_matmul, lora_matmul
from inoc_jax.model.quantization import Dequantizer, QuantConfig, QuantizedWeight, quantize
from inoc_jax.sharding.activations import constrain

class Projection(nnx.Module):
  """x[..., *in_shape] @ kernel[*in_shape, *out_shape] (+ bias[*out_shape]) (+ LoRA).

  With LoRA the output gains scale * dropout(x) @ A[*in_shape, r] @ B[r, *out_shape];
  B starts at zero so an adapted model begins identical to its base. The adapters are
  trained, so they are float32 whatever `param_dtype` (the frozen kernel's) is.
  With `quant` (a LoRA run's frozen base, see quantization.py) the kernel is stored as
  `kernel` (int8 / packed NF4 codes) and `kernel_scale`, and dequantised in the matmul.
  """

  def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], *, use_bias: bool = False,
               lora: LoraConfig | None = None, quant: QuantConfig | None = None, dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
    self.dtype, self.param_dtype, self.quant = dtype, param_dtype, quant
    fan_in = math.prod(self.in_shape)
    kernel = jax.random.normal(rngs.params(), self.in_shape + self.out_shape, param_dtype) / math.sqrt(fan_in)
    if quant is None:
      self.kernel = nnx.Param(kernel)
    else:
      quant.check_axis(self.in_shape[-1], "a projection's last input axis")
      codes, scales = quantize(kernel, quant, len(self.in_shape))
      self.kernel, self.kernel_scale = QuantizedWeight(codes), QuantizedWeight(scales)
    self.bias = nnx.Param(jnp.zeros(self.out_shape, param_dtype)) if use_bias else None
    self.lora = lora
    if lora is not None:
      bound = 1.0 / math.sqrt(fan_in)
      self.lora_a = nnx.LoRAParam(jax.random.uniform(
          rngs.params(), self.in_shape + (lora.rank,), jnp.float32, -bound, bound))
      self.lora_b = nnx.LoRAParam(jnp.zeros((lora.rank,) + self.out_shape, jnp.float32))

  def _stored_kernel(self, dtype):
    """(what the matmul receives, its Dequantizer or None): the kernel cast to `dtype`, or its codes."""
    if self.quant is None:
      return self.kernel[...].astype(dtype), None
    return (self.kernel[...], self.kernel_scale[...]), Dequantizer(self.quant, len(self.in_shape),
                                                                   jnp.dtype(dtype).name)

  def __call__(self, x: jax.Array, dropout_rng: jax.Array | None = None) -> jax.Array:
    x = x.astype(self.dtype)
    (kernel, dequant), n_in = self._stored_kernel(self.dtype), len(self.in_shape)
    if self.lora is None and dequant is not None:
      y = frozen_matmul(x, kernel, dequant, n_in)
    elif self.lora is None:
      ins, outs = axis_letters(n_in, kernel.ndim)
      y = jnp.einsum(f"...{ins},{ins}{outs}->...{outs}", x, kernel)
    else:
      adapter_in = x
      if self.lora.dropout > 0.0 and dropout_rng is not None:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - self.lora.dropout, x.shape)
        adapter_in = jnp.where(keep, x / (1.0 - self.lora.dropout), 0.0).astype(self.dtype)
      y = lora_matmul(x, adapter_in, kernel, self.lora_a[...].astype(self.dtype),
                      self.lora_b[...].astype(self.dtype), self.lora.scale, n_in, dequant)
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y

  def base_kernel(self) -> jax.Array:
    """The frozen kernel [*in, *out] in `param_dtype` (dequantised when stored quantised)."""
    kernel, dequant = self._stored_kernel(self.param_dtype)
    return kernel if dequant is None else dequant(kernel)

  def merged_kernel(self) -> jax.Array:
    """Base kernel with the adapter folded in (for export and fast sampling)."""
    kernel = self.base_kernel()
    if self.lora is None:
      return kernel
    a = self.lora_a[...].reshape(-1, self.lora.rank)
    b = self.lora_b[...].reshape(self.lora.rank, -1)
    delta = (a @ b).reshape(kernel.shape) * self.lora.scale
    return (kernel + delta).astype(kernel.dtype)

  def fold_into_plain_kernel(self) -> None:
    """Replaces the stored kernel (and its scales) by the merged dense `nnx.Param` a plain model has."""
    merged = self.merged_kernel()
    if self.quant is not None:
      self.kernel_scale, self.quant = None, None
      self.kernel = nnx.Param(merged)
    else:
      self.kernel[...] = merged


def redraw_adapters(model: nnx.Module, key: jax.Array) -> None:
  """Re-draws every LoRA A [*in, r] ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in place, one draw per shape.

  Same distribution as `Projection`'s own draw, far cheaper to compile: XLA on CPU
  compiles each threefry call site on its own, so SmolLM2's 210 adapters cost ~20 s
  of init compile drawn one by one and ~4 s drawn as one array per distinct shape
  (3 for a Llama). Inside a jitted init the per-module draws become dead code.
  """
  groups: dict[tuple[int, ...], list[Projection]] = {}
  for _, module in nnx.iter_modules(model):
    if isinstance(module, Projection) and module.lora is not None:
      groups.setdefault(tuple(module.lora_a[...].shape), []).append(module)
  for i, shape in enumerate(sorted(groups)):
    bound = 1.0 / math.sqrt(math.prod(shape[:-1]))
    draws = jax.random.uniform(jax.random.fold_in(key, i), (len(groups[shape]),) + shape, jnp.float32,
                               -bound, bound)
    for module, draw in zip(groups[shape], jnp.unstack(draws)):
      module.lora_a.set_value(draw)


class RMSNorm(nnx.Module):
  """RMSNorm computed in float32; Gemma scales by (1 + w), others by w."""

  def __init__(self, dim: int, *, eps: float, plus_one: bool, param_dtype=jnp.float32):
    self.eps, self.plus_one = eps, plus_one
    init = jnp.zeros if plus_one else jnp.ones
    self.scale = nnx.Param(init((dim,), param_dtype))

  def __call__(self, x: jax.Array) -> jax.Array:
    dtype = x.dtype
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
    scale = self.scale[...].astype(jnp.float32)
    if self.plus_one:
      scale = 1.0 + scale
    return (normed * scale).astype(dtype)


class Embedder(nnx.Module):
  """Token embedding table [vocab, d_model]; also the tied output head."""

  def __init__(self, vocab_size: int, d_model: int, *, scale_by_sqrt_dim: bool, dtype, param_dtype,
               rngs: nnx.Rngs):
    self.embedding = nnx.Param(jax.random.normal(rngs.params(), (vocab_size, d_model), param_dtype) * 0.02)
    self.scale_by_sqrt_dim = scale_by_sqrt_dim
    self.dtype = dtype

  def encode(self, tokens: jax.Array) -> jax.Array:
    # Under a training mesh each device looks up its data group's rows in its d_model slice of the
    # table ([batch/data, seq, d/fsdp]); the caller re-splits rows over fsdp (an all-to-all). The
    # backward pass scatters into the local slice only, never into a full [vocab, d_model] float32
    # gradient, and each resharding step is a single collective.
    rows = ("batch_data",) + (None,) * (tokens.ndim - 1)
    x = jnp.take(self.embedding[...], constrain(tokens, *rows), axis=0)
    x = constrain(x, *rows, "embed_shard").astype(self.dtype)
    if self.scale_by_sqrt_dim:
      # HF Gemma rounds the normaliser to the compute dtype before multiplying.
      x = x * jnp.asarray(math.sqrt(x.shape[-1]), self.dtype)
    return x

  def decode(self, hidden: jax.Array) -> jax.Array:
    """Tied output head, vocab-parallel under a mesh (see `vocab_parallel_logits`)."""
    table = constrain(self.embedding[...].astype(self.dtype), "vocab", None)
    return vocab_parallel_logits(hidden, lambda h: jnp.einsum("...d,vd->...v", h, table))


def vocab_parallel_logits(hidden: jax.Array, head) -> jax.Array:
  """logits = head(hidden) with every row on every device and the vocabulary split.

  Sharding the head's vocabulary dimension (rather than d_model) keeps the
  weight gradient local: each device forms h^T @ dlogits for its vocabulary
  slice from all rows, where a d_model-sharded head would need a full
  [d_model, vocab] float32 partial gradient on every device before the
  reduce-scatter (2 GiB for qwen2-7b). Replicating the rows costs one all-gather
  of [batch, seq, d_model] activations.
  """
  rows = (None,) * (hidden.ndim - 1)
  logits = head(constrain(hidden, *rows, None))
  return constrain(logits, *rows, "vocab")


class GatedMLP(nnx.Module):
  """down(act(gate(x)) * up(x)): SwiGLU (silu) or GeGLU (tanh-approximate GELU)."""

  def __init__(self, d_model: int, mlp_dim: int, *, activation: str, lora: LoraConfig | None, dtype,
               param_dtype, rngs: nnx.Rngs, quant: QuantConfig | None = None):
    def proj(name, shape_in, shape_out):
      adapter = lora if (lora is not None and name in lora.targets) else None
      return Projection(shape_in, shape_out, lora=adapter, quant=quant, dtype=dtype, param_dtype=param_dtype,
                        rngs=rngs)

    self.gate_proj = proj("gate", (d_model,), (mlp_dim,))
    self.up_proj = proj("up", (d_model,), (mlp_dim,))
    self.down_proj = proj("down", (mlp_dim,), (d_model,))
    self.activation = activation

  def __call__(self, x: jax.Array, dropout_rng: jax.Array | None = None) -> jax.Array:
    keys = [None] * 3 if dropout_rng is None else list(jax.random.split(dropout_rng, 3))
    gate = self.gate_proj(x, keys[0])
    if self.activation == "silu":
      gate = jax.nn.silu(gate)
    else:
      gate = jax.nn.gelu(gate, approximate=True)
    hidden = gate * self.up_proj(x, keys[1])
    if hidden.ndim == 3:
      hidden = constrain(hidden, "batch", "length", "mlp")
    return self.down_proj(hidden, keys[2])
