"""HF reference models for the benchmarks: load them with transformers and copy their weights into ours.

The copy (HF [out, in] linear weights -> our structured kernels) serves the
benchmarks only, so both sides run the *same* weights; the project's weight
importers live in inoc_jax.weights.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from inoc_jax import model_sources
from inoc_jax.model.config import ModelConfig
from inoc_jax.model import build
from inoc_jax.model.transformer import Transformer


def load_hf_model(spec: str):
  """transformers model (float32, eval mode) for a known name, GGUF file or HF folder."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  source = model_sources.resolve(spec)
  if source.kind == "gguf":
    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(source.path), gguf_file=os.path.basename(source.path), dtype=torch.float32)
  else:
    model = transformers.AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32)
  return model.eval()


def transformer_from_hf(hf_model, cfg: ModelConfig, dtype=jnp.float32) -> Transformer:
  """Our Transformer of architecture `cfg` holding `hf_model`'s weights."""
  weights = {k: v.detach().float().numpy() for k, v in hf_model.state_dict().items()}
  model = build.random_model(cfg, dtype)  # every weight is overwritten below
  d, h = cfg.d_model, cfg.head_dim

  def put(variable, array: np.ndarray):
    if variable[...].shape != array.shape:
      raise ValueError(f"shape mismatch: ours {variable[...].shape}, HF {array.shape}")
    variable[...] = jnp.asarray(array, jnp.float32)

  put(model.embedder.embedding, weights["model.embed_tokens.weight"])
  put(model.final_norm.scale, weights["model.norm.weight"])
  if not cfg.tie_embeddings:
    put(model.lm_head.kernel, weights["lm_head.weight"].T)
  for i, block in enumerate(model.layers):
    w = lambda name, i=i: weights[f"model.layers.{i}.{name}"]
    put(block.attn_norm.scale, w("input_layernorm.weight"))
    put(block.mlp_norm.scale, w("post_attention_layernorm.weight"))
    for name, heads in (("q", cfg.num_heads), ("k", cfg.num_kv_heads), ("v", cfg.num_kv_heads)):
      proj = getattr(block.attn, f"{name}_proj")
      put(proj.kernel, w(f"self_attn.{name}_proj.weight").T.reshape(d, heads, h))
      if cfg.qkv_bias:
        put(proj.bias, w(f"self_attn.{name}_proj.bias").reshape(heads, h))
    put(block.attn.o_proj.kernel, w("self_attn.o_proj.weight").T.reshape(cfg.num_heads, h, d))
    for name in ("gate", "up", "down"):
      put(getattr(block.mlp, f"{name}_proj").kernel, w(f"mlp.{name}_proj.weight").T)
  return model
