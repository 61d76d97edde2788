"""Model FLOPs per token of a decoder-only transformer (what MFU is counted from).

Counting convention (PaLM appendix B style, multiply-add = 2 FLOP):

* N_mm, the weights a token meets in matmuls: per layer q, k, v, o and the
  three MLP matrices, plus the vocabulary head [d_model, vocab] (the tied
  embedding counts once, as the head; the lookup itself is free). Norms and
  biases are ignored.
* Forward matmuls: 2·N_mm per token. Backward: 2·N_mm for the input gradients
  and 2·N_mm for the weight gradients.
* Attention scores and the weighted sum of values: 2·s·H·hd FLOP each per
  token and layer in the forward pass, for sequence length s, H query heads of
  width hd, counting the full s×s score matrix (what a dense masked kernel
  computes; causal skipping would halve it). Backward is twice the forward.

Full fine-tuning:  6·N_mm + 12·L·H·hd·s per token.
LoRA:              4·N_mm + 6·N_lora + 12·L·H·hd·s per token (frozen weights
                   need input gradients but no weight gradients; N_lora = the
                   adapters' r·(in + out) per adapted matrix).

Remat recomputation is not counted (model FLOPs, not hardware FLOPs).
"""

from __future__ import annotations

from inoc_jax.model.config import ModelConfig
from inoc_jax.model.lora import LoraConfig, count_lora_params


def matmul_params(cfg: ModelConfig) -> int:
  """N_mm: weights used in matmuls per token, including the vocabulary head."""
  d, hd = cfg.d_model, cfg.head_dim
  attention = d * hd * (2 * cfg.num_heads + 2 * cfg.num_kv_heads)
  mlp = 3 * d * cfg.mlp_dim
  return cfg.num_layers * (attention + mlp) + cfg.vocab_size * d


def attention_forward_flops(cfg: ModelConfig, seq_len: int) -> int:
  """Scores (QK^T) and weighted values (PV) of one token over `seq_len` keys, all layers: 4·L·H·hd·s."""
  return 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq_len


def train_flops_per_token(cfg: ModelConfig, seq_len: int, lora: LoraConfig | None = None) -> int:
  """Forward + backward model FLOPs per trained token (see the module docstring)."""
  attention = 3 * attention_forward_flops(cfg, seq_len)
  if lora is None:
    return 6 * matmul_params(cfg) + attention
  return 4 * matmul_params(cfg) + 6 * count_lora_params(cfg, lora) + attention


def forward_flops_per_token(cfg: ModelConfig, context_len: int) -> int:
  """Forward model FLOPs of one token attending over `context_len` keys (decoding)."""
  return 2 * matmul_params(cfg) + attention_forward_flops(cfg, context_len)
