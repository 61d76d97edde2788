"""Grouped-query attention with RoPE, packed-sequence masking and a KV cache.

One mask rule serves training, prefill and decoding: query token i may attend
key token j iff both belong to the same non-padding segment and
position[j] <= position[i] (and, in a sliding-window layer,
position[i] - position[j] < window). Packed rows (several examples per row, each
with its own segment id and positions restarting at 0) therefore never attend
across examples, and left-padded sampler batches need no special case.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from inoc_jax.model.config import ModelConfig, rope_inverse_frequencies
from inoc_jax.model.fused_attention import fused_attention, layer_impl
from inoc_jax.model.layers import Projection, RMSNorm
from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.quantization import QuantConfig


class LayerCache(NamedTuple):
  """Keys/values of one layer for all cache slots: [batch, cache_len, kv_heads, head_dim]."""

  k: jax.Array
  v: jax.Array


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
  """Rotary embedding, HF 'rotate_half' layout.

  Args:
    x: [batch, seq, heads, head_dim].
    positions: [batch, seq] integer positions.
    inv_freq: [head_dim // 2] frequencies.
  """
  angles = positions.astype(jnp.float32)[..., None] * inv_freq[None, None, :]  # [B, T, H/2]
  sin = jnp.sin(angles)[:, :, None, :]
  cos = jnp.cos(angles)[:, :, None, :]
  x32 = x.astype(jnp.float32)
  first, second = jnp.split(x32, 2, axis=-1)
  rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
  return rotated.astype(x.dtype)


def attention_mask(q_segment_ids: jax.Array, q_positions: jax.Array, kv_segment_ids: jax.Array,
                   kv_positions: jax.Array, window: int | None = None) -> jax.Array:
  """Boolean mask [batch, 1, q_len, kv_len]; segment id 0 marks padding; `window` limits how far back."""
  same_segment = q_segment_ids[:, :, None] == kv_segment_ids[:, None, :]
  real_key = (kv_segment_ids != 0)[:, None, :]
  distance = q_positions[:, :, None] - kv_positions[:, None, :]
  allowed = same_segment & real_key & (distance >= 0)
  if window is not None:
    allowed = allowed & (distance < window)
  return allowed[:, None, :, :]


def softcapped_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, scale: float,
                         softcap: float) -> jax.Array:
  """Attention whose scores pass through cap * tanh(s / cap) before the mask (Gemma-2).

  q: [B, T, H, D]; k, v: [B, S, KV, D]; mask: [B, 1, T, S]. The query heads are
  grouped onto their KV head ([B, T, KV, H/KV, D]), so K and V are never repeated.
  """
  b, t, h, d = q.shape
  kv = k.shape[2]
  grouped = q.reshape(b, t, kv, h // kv, d)
  scores = jnp.einsum("btkgd,bskd->bkgts", grouped, k, preferred_element_type=jnp.float32) * scale
  scores = softcap * jnp.tanh(scores / softcap)
  scores = jnp.where(mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  return jnp.einsum("bkgts,bskd->btkgd", probs, v).reshape(b, t, h, d)


class Attention(nnx.Module):
  """Multi-head / grouped-query / multi-query self-attention.

  `impl` ('xla', 'splash', 'cudnn', 'flash'; see fused_attention.py) picks the kernel of
  uncached calls (training rows); cached prefill and decode always use XLA.
  """

  def __init__(self, cfg: ModelConfig, *, lora: LoraConfig | None, dtype, param_dtype, rngs: nnx.Rngs,
               layer: int = 0, impl: str = "xla", quant: QuantConfig | None = None):
    def proj(name, shape_in, shape_out, use_bias=False):
      adapter = lora if (lora is not None and name in lora.targets) else None
      return Projection(shape_in, shape_out, use_bias=use_bias, lora=adapter, quant=quant, dtype=dtype,
                        param_dtype=param_dtype, rngs=rngs)

    d, h = cfg.d_model, cfg.head_dim
    self.q_proj = proj("q", (d,), (cfg.num_heads, h), cfg.qkv_bias)
    self.k_proj = proj("k", (d,), (cfg.num_kv_heads, h), cfg.qkv_bias)
    self.v_proj = proj("v", (d,), (cfg.num_kv_heads, h), cfg.qkv_bias)
    self.o_proj = proj("o", (cfg.num_heads, h), (d,))
    if cfg.qk_norm:
      self.q_norm = RMSNorm(h, eps=cfg.norm_eps, plus_one=cfg.norm_plus_one, param_dtype=param_dtype)
      self.k_norm = RMSNorm(h, eps=cfg.norm_eps, plus_one=cfg.norm_plus_one, param_dtype=param_dtype)
    else:
      self.q_norm = self.k_norm = None
    self.inv_freq = tuple(rope_inverse_frequencies(cfg, layer))
    self.scale = (cfg.query_scale or h) ** -0.5
    self.window = cfg.layer_window(layer)
    self.softcap = cfg.attn_logit_softcap
    self.dtype = dtype
    self.impl = layer_impl(impl, self.window)

  def __call__(self, x: jax.Array, positions: jax.Array, segment_ids: jax.Array, *,
               cache: LayerCache | None = None, cache_segment_ids: jax.Array | None = None,
               cache_positions: jax.Array | None = None, cache_index: jax.Array | None = None,
               dropout_rng: jax.Array | None = None) -> tuple[jax.Array, LayerCache | None]:
    """Attend over this call's tokens, or over the cache after writing them into it.

    Args:
      x: [batch, seq, d_model].
      positions, segment_ids: [batch, seq].
      cache: this layer's cache, or None for training / uncached forward.
      cache_segment_ids, cache_positions: [batch, cache_len], already updated
        with this call's tokens at `cache_index`.
      cache_index: scalar slot where this call's first token is written.
      dropout_rng: key for LoRA dropout (training only).

    Returns:
      ([batch, seq, d_model], updated cache or None).
    """
    keys = [None] * 4 if dropout_rng is None else list(jax.random.split(dropout_rng, 4))
    inv_freq = jnp.asarray(self.inv_freq, jnp.float32)
    q, k = self.q_proj(x, keys[0]), self.k_proj(x, keys[1])
    if self.q_norm is not None:
      q, k = self.q_norm(q), self.k_norm(k)
    q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
    v = self.v_proj(x, keys[2])
    if cache is None:
      kv_segments, kv_positions = segment_ids, positions
      new_cache = None
    else:
      zero = jnp.zeros((), jnp.int32)
      start = (zero, cache_index.astype(jnp.int32), zero, zero)
      k = jax.lax.dynamic_update_slice(cache.k, k.astype(cache.k.dtype), start)
      v = jax.lax.dynamic_update_slice(cache.v, v.astype(cache.v.dtype), start)
      new_cache = LayerCache(k, v)
      kv_segments, kv_positions = cache_segment_ids, cache_positions
    if cache is None and self.impl != "xla":
      out = fused_attention(self.impl, q, k, v, segment_ids, scale=self.scale, window=self.window,
                            softcap=self.softcap)
    else:
      mask = attention_mask(segment_ids, positions, kv_segments, kv_positions, self.window)
      if self.softcap is None:
        out = jax.nn.dot_product_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask=mask, scale=self.scale)
      else:
        out = softcapped_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask, self.scale, self.softcap)
    # Rows whose query is padding attend to nothing; keep them finite (zeros).
    out = jnp.where((segment_ids != 0)[:, :, None, None], out, 0.0).astype(self.dtype)
    return self.o_proj(out, keys[3]), new_cache
