"""Hugging Face `config.json` <-> `ModelConfig` for the Llama, Qwen2 and Gemma families.

Reads both spellings of RoPE settings: transformers 4 (`rope_theta`,
`rope_scaling`) and transformers 5 (`rope_parameters`). Writes the transformers
4 spelling, which every version of transformers and vLLM reads. Features our
model does not implement (sliding windows, o_proj/MLP biases, other RoPE
types) are refused with a message instead of being silently dropped.
"""

from __future__ import annotations

from typing import Any, Mapping

from inoc_jax.errors import CheckpointError
from inoc_jax.model.config import ModelConfig, RopeScaling

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "gemma": "GemmaForCausalLM"}


def _rope(hf: Mapping[str, Any]) -> tuple[float, dict | None]:
  params = dict(hf.get("rope_parameters") or {})
  scaling = hf.get("rope_scaling") or None
  theta = params.pop("rope_theta", None) or hf.get("rope_theta") or 10000.0
  if scaling is None and params.get("rope_type", params.get("type", "default")) != "default":
    scaling = params
  return float(theta), (dict(scaling) if scaling else None)


def _ids(value) -> tuple[int, ...]:
  if value is None:
    return ()
  return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),)


def model_config_from_hf(hf: Mapping[str, Any], where: str = "config.json") -> ModelConfig:
  """Parses a transformers config dict; `where` names the file in error messages."""
  family = hf.get("model_type")
  if family not in ARCHITECTURES:
    raise CheckpointError(f"{where} has model_type {family!r}; inoc_jax loads {', '.join(ARCHITECTURES)} "
                          "(SmolLM2 is llama).")
  unsupported = []
  if family == "llama" and hf.get("attention_bias"):
    unsupported.append("attention_bias=true (o_proj bias)")
  if hf.get("mlp_bias"):
    unsupported.append("mlp_bias=true")
  if family == "qwen2" and hf.get("use_sliding_window"):
    unsupported.append("use_sliding_window=true")
  theta, scaling = _rope(hf)
  rope_scaling = None
  if scaling:
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind != "llama3":
      unsupported.append(f"rope type {kind!r} (only default and llama3 are implemented)")
    else:
      rope_scaling = RopeScaling(factor=float(scaling["factor"]),
                                 low_freq_factor=float(scaling["low_freq_factor"]),
                                 high_freq_factor=float(scaling["high_freq_factor"]),
                                 original_max_position=int(scaling["original_max_position_embeddings"]))
  if unsupported:
    raise CheckpointError(f"{where} uses {', '.join(unsupported)}, which inoc_jax's model does not implement.")
  d_model, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
  is_gemma = family == "gemma"
  activation = hf.get("hidden_activation") or hf.get("hidden_act") or ("gelu_pytorch_tanh" if is_gemma else "silu")
  if is_gemma and activation == "gelu":
    activation = "gelu_pytorch_tanh"  # transformers reads Gemma's legacy 'gelu' as the tanh approximation
  activations = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}
  if activation not in activations:
    raise CheckpointError(f"{where} uses hidden activation {activation!r}; inoc_jax implements silu and "
                          "gelu_pytorch_tanh.")
  return ModelConfig(
      family=family,
      vocab_size=int(hf["vocab_size"]),
      d_model=d_model,
      num_layers=int(hf["num_hidden_layers"]),
      num_heads=heads,
      num_kv_heads=int(hf.get("num_key_value_heads") or heads),
      head_dim=int(hf.get("head_dim") or d_model // heads),
      mlp_dim=int(hf["intermediate_size"]),
      activation=activations[activation],
      norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
      norm_plus_one=is_gemma,
      embed_scale=is_gemma,
      qkv_bias=family == "qwen2" or bool(hf.get("attention_bias")),
      tie_embeddings=bool(hf.get("tie_word_embeddings", is_gemma)),
      rope_theta=theta,
      rope_scaling=rope_scaling,
      max_seq_len=int(hf.get("max_position_embeddings", 2048)),
      bos_token_id=None if hf.get("bos_token_id") is None else int(hf["bos_token_id"]),
      eos_token_ids=_ids(hf.get("eos_token_id")),
      pad_token_id=None if hf.get("pad_token_id") is None else int(hf["pad_token_id"]),
  )


def hf_config_from_model(cfg: ModelConfig, dtype: str = "float32") -> dict[str, Any]:
  """The config.json transformers needs to rebuild `cfg` (transformers 4 spelling)."""
  if cfg.family == "llama" and cfg.qkv_bias:
    raise CheckpointError("A llama model with q/k/v biases has no transformers equivalent; export it as qwen2.")
  eos = list(cfg.eos_token_ids)
  hf: dict[str, Any] = {
      "architectures": [ARCHITECTURES[cfg.family]],
      "model_type": cfg.family,
      "vocab_size": cfg.vocab_size,
      "hidden_size": cfg.d_model,
      "num_hidden_layers": cfg.num_layers,
      "num_attention_heads": cfg.num_heads,
      "num_key_value_heads": cfg.num_kv_heads,
      "head_dim": cfg.head_dim,
      "intermediate_size": cfg.mlp_dim,
      "hidden_act": "silu" if cfg.activation == "silu" else "gelu_pytorch_tanh",
      "rms_norm_eps": cfg.norm_eps,
      "rope_theta": cfg.rope_theta,
      "max_position_embeddings": cfg.max_seq_len,
      "tie_word_embeddings": cfg.tie_embeddings,
      "bos_token_id": cfg.bos_token_id,
      "eos_token_id": eos[0] if len(eos) == 1 else (eos or None),
      "pad_token_id": cfg.pad_token_id,
      "torch_dtype": dtype,
      "use_cache": True,
  }
  if cfg.family == "gemma":
    hf["hidden_activation"] = "gelu_pytorch_tanh"
  if cfg.family == "llama":
    hf.update(attention_bias=False, mlp_bias=False)
  if cfg.family == "qwen2":
    hf.update(use_sliding_window=False, sliding_window=None, max_window_layers=cfg.num_layers)
  if cfg.rope_scaling is not None:
    s = cfg.rope_scaling
    hf["rope_scaling"] = {"rope_type": "llama3", "factor": s.factor, "low_freq_factor": s.low_freq_factor,
                          "high_freq_factor": s.high_freq_factor,
                          "original_max_position_embeddings": s.original_max_position}
  return hf
