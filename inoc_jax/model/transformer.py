"""The decoder-only transformer (Flax NNX) shared by training and sampling.

Parameter tree (the names the sharding rules and checkpoint key maps use):

  embedder/embedding                       [vocab, d_model]
  layers/{i}/attn_norm/scale               [d_model]
  layers/{i}/attn/{q,k,v}_proj/kernel      [d_model, heads, head_dim]   (+ bias [heads, head_dim])
  layers/{i}/attn/o_proj/kernel            [heads, head_dim, d_model]
  layers/{i}/attn/{q,k}_norm/scale         [head_dim]                   (qk_norm: Qwen3, Gemma-3)
  layers/{i}/post_attn_norm/scale          [d_model]                    (post_norms: Gemma-2/3)
  layers/{i}/mlp_norm/scale                [d_model]
  layers/{i}/post_mlp_norm/scale           [d_model]                    (post_norms)
  layers/{i}/mlp/{gate,up}_proj/kernel     [d_model, mlp_dim]
  layers/{i}/mlp/down_proj/kernel          [mlp_dim, d_model]
  (a quantised base, model/quantization.py: each block kernel as `kernel` codes + `kernel_scale`)
  layers/{i}/mlp/router/kernel             [d_model, num_experts]            (MoE, model/moe.py, instead of
  layers/{i}/mlp/experts/*_proj/kernel     [num_experts, in, out]             the gated MLP above)
  final_norm/scale                         [d_model]
  lm_head/kernel                           [d_model, vocab]   (untied models only)

LoRA adapters add `lora_a` / `lora_b` (nnx.LoRAParam) beside an adapted kernel.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from inoc_jax.errors import ConfigError
from inoc_jax.model.attention import Attention, LayerCache
from inoc_jax.model.config import ModelConfig
from inoc_jax.model.layers import Embedder, GatedMLP, Projection, RMSNorm, vocab_parallel_logits
from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.moe import MoEMLP
from inoc_jax.model.quantization import QuantConfig
from inoc_jax.sharding.activations import constrain

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class DecodeCache(NamedTuple):
  """Sampler state of all layers.

  Attributes:
    layers: one LayerCache per block, k/v of shape [batch, cache_len, kv_heads, head_dim].
    segment_ids: [batch, cache_len]; 0 for empty slots and left padding.
    positions: [batch, cache_len].
    index: scalar int32, the slot the next token is written to.
  """

  layers: tuple[LayerCache, ...]
  segment_ids: jax.Array
  positions: jax.Array
  index: jax.Array


def init_cache(cfg: ModelConfig, batch: int, cache_len: int, dtype=jnp.float32) -> DecodeCache:
  shape = (batch, cache_len, cfg.num_kv_heads, cfg.head_dim)
  layers = tuple(LayerCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(cfg.num_layers))
  return DecodeCache(layers, jnp.zeros((batch, cache_len), jnp.int32),
                     jnp.zeros((batch, cache_len), jnp.int32), jnp.zeros((), jnp.int32))


class Block(nnx.Module):
  """Pre-norm residual block: x + attn(norm(x)); x + mlp(norm(x)).

  With `cfg.post_norms` (Gemma-2/3) each branch's output is normed again before the add.
  """

  def __init__(self, cfg: ModelConfig, *, lora, dtype, param_dtype, rngs: nnx.Rngs, layer: int = 0,
               attention_impl: str = "xla", quant: QuantConfig | None = None):
    norm = lambda: RMSNorm(cfg.d_model, eps=cfg.norm_eps, plus_one=cfg.norm_plus_one, param_dtype=param_dtype)
    self.attn_norm = norm()
    self.attn = Attention(cfg, lora=lora, dtype=dtype, param_dtype=param_dtype, rngs=rngs, layer=layer,
                          impl=attention_impl, quant=quant)
    self.post_attn_norm = norm() if cfg.post_norms else None
    self.mlp_norm = norm()
    if cfg.num_experts:
      self.mlp = MoEMLP(cfg, lora=lora, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    else:
      self.mlp = GatedMLP(cfg.d_model, cfg.mlp_dim, activation=cfg.activation, lora=lora, dtype=dtype,
                          param_dtype=param_dtype, rngs=rngs, quant=quant)
    self.post_mlp_norm = norm() if cfg.post_norms else None

  def __call__(self, x, positions, segment_ids, layer_cache, cache_segment_ids, cache_positions,
               cache_index, dropout_rng):
    attn_rng = mlp_rng = None
    if dropout_rng is not None:
      attn_rng, mlp_rng = jax.random.split(dropout_rng)
    attn_out, new_cache = self.attn(self.attn_norm(x), positions, segment_ids, cache=layer_cache,
                                    cache_segment_ids=cache_segment_ids, cache_positions=cache_positions,
                                    cache_index=cache_index, dropout_rng=attn_rng)
    if self.post_attn_norm is not None:
      attn_out = self.post_attn_norm(attn_out)
    x = x + attn_out
    mlp_out = self.mlp(self.mlp_norm(x), mlp_rng)
    if self.post_mlp_norm is not None:
      mlp_out = self.post_mlp_norm(mlp_out)
    x = x + mlp_out
    return x, new_cache


def _rematerialised_block(block: Block, policy, x, positions, segment_ids, dropout_rng):
  """Runs `block` as a pure function of its state under `jax.checkpoint`.

  Plain `jax.checkpoint` over (state, inputs) composes with the outer jit/grad of
  the train step, which merges the whole model from pure state.
  """
  graphdef, state = nnx.split(block)

  def run(state, x, positions, segment_ids, dropout_rng):
    out, _ = nnx.merge(graphdef, state)(x, positions, segment_ids, None, None, None, None, dropout_rng)
    return out

  return jax.checkpoint(run, policy=policy, prevent_cse=True)(state, x, positions, segment_ids, dropout_rng)


def head_logits(head: nnx.Module, hidden: jax.Array, softcap: float | None = None) -> jax.Array:
  """Logits from `Transformer.head` (tied embedder or untied projection); see `Transformer.logits`.

  `softcap` (Gemma-2's final_logit_softcap) maps them through cap * tanh(logits / cap).
  """
  logits = head.decode(hidden) if isinstance(head, Embedder) else vocab_parallel_logits(hidden, head)
  if softcap is not None:
    logits = (softcap * jnp.tanh(logits.astype(jnp.float32) / softcap)).astype(logits.dtype)
  return logits


class Transformer(nnx.Module):
  """Decoder-only causal LM.

  Args:
    cfg: architecture.
    lora: adapters to add, or None for full fine-tuning.
    dtype: compute dtype (activations, matmuls); params stay in `param_dtype`.
    remat: key of REMAT_POLICIES, rematerialisation of each block in training.
    attention_impl: kernel of uncached attention, 'xla' | 'splash' | 'cudnn' (fused_attention.resolve_impl).
    quant: store the blocks' frozen kernels quantised (LoRA only); embeddings, norms and the head stay in
      `param_dtype`.
  """

  def __init__(self, cfg: ModelConfig, *, lora: LoraConfig | None = None, dtype=jnp.float32,
               param_dtype=jnp.float32, remat: str = "none", attention_impl: str = "xla",
               quant: QuantConfig | None = None, rngs: nnx.Rngs):
    if remat not in REMAT_POLICIES:
      raise ConfigError(f"Unknown remat policy {remat!r}; choose one of {', '.join(REMAT_POLICIES)}.")
    self.cfg, self.lora, self.dtype, self.remat = cfg, lora, dtype, remat
    self.embedder = Embedder(cfg.vocab_size, cfg.d_model, scale_by_sqrt_dim=cfg.embed_scale, dtype=dtype,
                             param_dtype=param_dtype, rngs=rngs)
    self.layers = nnx.List([Block(cfg, lora=lora, dtype=dtype, param_dtype=param_dtype, rngs=rngs, layer=i,
                                  attention_impl=attention_impl, quant=quant) for i in range(cfg.num_layers)])
    self.final_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps, plus_one=cfg.norm_plus_one,
                              param_dtype=param_dtype)
    self.lm_head = None if cfg.tie_embeddings else Projection(
        (cfg.d_model,), (cfg.vocab_size,), dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def hidden_states(self, tokens: jax.Array, positions: jax.Array, segment_ids: jax.Array, *,
                    cache: DecodeCache | None = None, dropout_rng: jax.Array | None = None
                    ) -> tuple[jax.Array, DecodeCache | None]:
    """Final-norm hidden states [batch, seq, d_model] (and the updated cache).

    Args:
      tokens, positions, segment_ids: [batch, seq] int32; segment 0 is padding.
      cache: sampler cache; this call's tokens are written at `cache.index`.
      dropout_rng: enables LoRA dropout (training).
    """
    x = constrain(self.embedder.encode(tokens), "batch", "length", "embed")
    cache_segments = cache_positions = cache_index = None
    if cache is not None:
      cache_index = cache.index
      start = (jnp.zeros((), jnp.int32), cache_index)
      cache_segments = jax.lax.dynamic_update_slice(cache.segment_ids, segment_ids.astype(jnp.int32), start)
      cache_positions = jax.lax.dynamic_update_slice(cache.positions, positions.astype(jnp.int32), start)
    use_remat = self.remat != "none" and cache is None
    new_layer_caches = []
    for i, block in enumerate(self.layers):
      layer_rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, i)
      if use_remat:
        x = _rematerialised_block(block, REMAT_POLICIES[self.remat], x, positions, segment_ids, layer_rng)
        new_layer_cache = None
      else:
        layer_cache = None if cache is None else cache.layers[i]
        x, new_layer_cache = block(x, positions, segment_ids, layer_cache, cache_segments, cache_positions,
                                   cache_index, layer_rng)
      x = constrain(x, "batch", "length", "embed")
      new_layer_caches.append(new_layer_cache)
    hidden = self.final_norm(x)
    if cache is None:
      return hidden, None
    new_cache = DecodeCache(tuple(new_layer_caches), cache_segments, cache_positions,
                            cache.index + tokens.shape[1])
    return hidden, new_cache

  def logits(self, hidden: jax.Array) -> jax.Array:
    """[..., d_model] -> [..., vocab] in the compute dtype."""
    return head_logits(self.head, hidden, self.cfg.final_logit_softcap)

  @property
  def head(self) -> nnx.Module:
    """The module holding the output head's weights: the embedder (tied) or `lm_head`."""
    return self.embedder if self.lm_head is None else self.lm_head

  def __call__(self, tokens, positions, segment_ids, *, cache=None, dropout_rng=None):
    hidden, new_cache = self.hidden_states(tokens, positions, segment_ids, cache=cache, dropout_rng=dropout_rng)
    return self.logits(hidden), new_cache
