"""Hugging Face `config.json` <-> `ModelConfig` for the Llama, Mistral, Qwen2/2.5/3, Qwen3-MoE and Gemma-1/2/3
families.

Reads both spellings of RoPE settings: transformers 4 (`rope_theta`,
`rope_scaling`, Gemma-3's `rope_local_base_freq`) and transformers 5
(`rope_parameters`, per layer type for Gemma-3). Writes the transformers 4
spelling plus `layer_types`, which current transformers and vLLM read. Features
our model does not implement (o_proj/MLP biases, other RoPE types, Qwen2's
partial sliding windows) are refused with a message instead of being silently
dropped.
"""

from __future__ import annotations

from typing import Any, Mapping

from inoc_jax.errors import CheckpointError
from inoc_jax.model.config import ModelConfig, RopeScaling

# HF model_type -> (our family, transformers architecture).
HF_FAMILIES = {
    "llama": ("llama", "LlamaForCausalLM"),
    "mistral": ("mistral", "MistralForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
    "gemma": ("gemma", "GemmaForCausalLM"),
    "gemma2": ("gemma2", "Gemma2ForCausalLM"),
    "gemma3_text": ("gemma3", "Gemma3ForCausalLM"),
    "qwen3_moe": ("qwen3_moe", "Qwen3MoeForCausalLM"),
}
MODEL_TYPES = {family: model_type for model_type, (family, _) in HF_FAMILIES.items()}
_GEMMAS = ("gemma", "gemma2", "gemma3")
_HF_LAYER_TYPES = {"full_attention": "full", "sliding_attention": "sliding"}


def _rope(hf: Mapping[str, Any], layer_type: str | None = None) -> tuple[float | None, dict | None]:
  """(theta, scaling dict or None) of one layer type (None: the model's only RoPE)."""
  params = dict(hf.get("rope_parameters") or {})
  if layer_type is not None and layer_type in params:
    params = dict(params[layer_type])
  elif layer_type is not None and any(k in params for k in _HF_LAYER_TYPES):
    params = {}
  scaling = None if layer_type == "sliding_attention" else (hf.get("rope_scaling") or None)
  theta = params.pop("rope_theta", None)
  if theta is None:
    theta = hf.get("rope_local_base_freq") if layer_type == "sliding_attention" else hf.get("rope_theta")
  if scaling is None and params.get("rope_type", params.get("type", "default")) != "default":
    scaling = params
  return (None if theta is None else float(theta)), (dict(scaling) if scaling else None)


def _rope_scaling(scaling: dict | None, unsupported: list[str]) -> RopeScaling | None:
  if not scaling:
    return None
  kind = scaling.get("rope_type", scaling.get("type"))
  if kind == "linear":
    return RopeScaling(factor=float(scaling["factor"]), kind="linear")
  if kind == "llama3":
    return RopeScaling(factor=float(scaling["factor"]), low_freq_factor=float(scaling["low_freq_factor"]),
                       high_freq_factor=float(scaling["high_freq_factor"]),
                       original_max_position=int(scaling["original_max_position_embeddings"]))
  unsupported.append(f"rope type {kind!r} (default, linear and llama3 are implemented)")
  return None


def _ids(value) -> tuple[int, ...]:
  if value is None:
    return ()
  return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),)


def _optional_int(value) -> int | None:
  return None if value is None else int(value)


def _layer_types(hf: Mapping[str, Any], family: str, num_layers: int) -> tuple[str, ...]:
  """Per-layer 'full'/'sliding' from `layer_types`, or the family's fixed pattern in older configs."""
  if hf.get("layer_types"):
    return tuple(_HF_LAYER_TYPES.get(t, t) for t in hf["layer_types"])
  if family == "gemma2":
    return tuple("sliding" if i % 2 == 0 else "full" for i in range(num_layers))
  if family == "gemma3":
    period = int(hf.get("sliding_window_pattern") or 6)
    return tuple("full" if (i + 1) % period == 0 else "sliding" for i in range(num_layers))
  return ()


def _unsupported_switches(hf: Mapping[str, Any], family: str) -> list[str]:
  unsupported = []
  if family in ("llama", "mistral", "qwen3", "qwen3_moe") and hf.get("attention_bias"):
    unsupported.append("attention_bias=true (o_proj bias)")
  if hf.get("mlp_bias"):
    unsupported.append("mlp_bias=true")
  if family in ("qwen2", "qwen3", "qwen3_moe") and hf.get("use_sliding_window"):
    unsupported.append("use_sliding_window=true")
  if family == "qwen3_moe" and (hf.get("mlp_only_layers") or int(hf.get("decoder_sparse_step") or 1) != 1):
    unsupported.append("dense MLP layers among the experts (mlp_only_layers / decoder_sparse_step != 1)")
  if hf.get("use_bidirectional_attention"):
    unsupported.append("use_bidirectional_attention=true")
  return unsupported


def _activation(hf: Mapping[str, Any], family: str, where: str) -> str:
  gemma = family in _GEMMAS
  activation = hf.get("hidden_activation") or hf.get("hidden_act") or ("gelu_pytorch_tanh" if gemma else "silu")
  if gemma and activation == "gelu":
    activation = "gelu_pytorch_tanh"  # transformers reads Gemma's legacy 'gelu' as the tanh approximation
  activations = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}
  if activation not in activations:
    raise CheckpointError(f"{where} uses hidden activation {activation!r}; inoc_jax implements silu and "
                          "gelu_pytorch_tanh.")
  return activations[activation]


def model_config_from_hf(hf: Mapping[str, Any], where: str = "config.json") -> ModelConfig:
  """Parses a transformers config dict; `where` names the file in error messages."""
  model_type = hf.get("model_type")
  if model_type not in HF_FAMILIES:
    raise CheckpointError(f"{where} has model_type {model_type!r}; inoc_jax loads {', '.join(HF_FAMILIES)} "
                          "(SmolLM2 is llama, Qwen2.5 is qwen2).")
  family = HF_FAMILIES[model_type][0]
  unsupported = _unsupported_switches(hf, family)
  num_layers = int(hf["num_hidden_layers"])
  layer_types = _layer_types(hf, family, num_layers)
  sliding_window = _optional_int(hf.get("sliding_window")) if (family == "mistral" or layer_types) else None
  if family == "gemma3":
    theta, scaling = _rope(hf, "full_attention")
    local_theta, _ = _rope(hf, "sliding_attention")
    local_theta = local_theta or 10000.0
  else:
    (theta, scaling), local_theta = _rope(hf), None
  rope_scaling = _rope_scaling(scaling, unsupported)
  if unsupported:
    raise CheckpointError(f"{where} uses {', '.join(unsupported)}, which inoc_jax's model does not implement.")
  if layer_types and "sliding" not in layer_types:
    sliding_window = None
  if sliding_window is None:
    layer_types = ()
  d_model, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
  gemma, later_gemma = family in _GEMMAS, family in ("gemma2", "gemma3")
  softcap = lambda key: None if hf.get(key) is None else float(hf[key])
  return ModelConfig(
      family=family,
      vocab_size=int(hf["vocab_size"]),
      d_model=d_model,
      num_layers=num_layers,
      num_heads=heads,
      num_kv_heads=int(hf.get("num_key_value_heads") or heads),
      head_dim=int(hf.get("head_dim") or d_model // heads),
      mlp_dim=int(hf["intermediate_size"]),
      activation=_activation(hf, family, where),
      norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
      norm_plus_one=gemma,
      embed_scale=gemma,
      qkv_bias=family == "qwen2" or bool(hf.get("attention_bias")),
      tie_embeddings=bool(hf.get("tie_word_embeddings", gemma)),
      rope_theta=theta or 10000.0,
      rope_scaling=rope_scaling,
      qk_norm=family in ("qwen3", "gemma3", "qwen3_moe"),
      post_norms=later_gemma,
      attn_logit_softcap=softcap("attn_logit_softcapping") if later_gemma else None,
      final_logit_softcap=softcap("final_logit_softcapping") if later_gemma else None,
      query_scale=float(hf.get("query_pre_attn_scalar") or 256) if later_gemma else None,
      sliding_window=sliding_window,
      layer_types=layer_types,
      local_rope_theta=local_theta,
      max_seq_len=int(hf.get("max_position_embeddings", 2048)),
      bos_token_id=_optional_int(hf.get("bos_token_id")),
      eos_token_ids=_ids(hf.get("eos_token_id")),
      pad_token_id=_optional_int(hf.get("pad_token_id")),
      **_experts(hf, family),
  )


def _experts(hf: Mapping[str, Any], family: str) -> dict[str, Any]:
  if family != "qwen3_moe":
    return {}
  experts = hf.get("num_experts") or hf.get("num_local_experts")  # transformers 5 writes the latter
  return dict(num_experts=int(experts), experts_per_token=int(hf["num_experts_per_tok"]),
              expert_mlp_dim=int(hf["moe_intermediate_size"]), norm_top_k=bool(hf.get("norm_topk_prob", False)))


def _rope_scaling_dict(s: RopeScaling) -> dict[str, Any]:
  if s.kind == "linear":
    return {"rope_type": "linear", "factor": s.factor}
  return {"rope_type": "llama3", "factor": s.factor, "low_freq_factor": s.low_freq_factor,
          "high_freq_factor": s.high_freq_factor, "original_max_position_embeddings": s.original_max_position}


def _family_fields(cfg: ModelConfig) -> dict[str, Any]:
  """The config.json fields only some families have."""
  hf: dict[str, Any] = {}
  if cfg.family in _GEMMAS:
    hf["hidden_activation"] = "gelu_pytorch_tanh"
  if cfg.family in ("llama", "mistral", "qwen3", "qwen3_moe"):
    hf.update(attention_bias=False, mlp_bias=False)
  if cfg.family in ("qwen2", "qwen3", "qwen3_moe"):
    hf.update(use_sliding_window=False, sliding_window=None, max_window_layers=cfg.num_layers)
  if cfg.family == "qwen3_moe":
    hf.update(num_experts=cfg.num_experts, num_experts_per_tok=cfg.experts_per_token,
              moe_intermediate_size=cfg.expert_mlp_dim, norm_topk_prob=cfg.norm_top_k, decoder_sparse_step=1,
              mlp_only_layers=[], output_router_logits=False)
  if cfg.family == "mistral":
    hf["sliding_window"] = cfg.sliding_window
  if cfg.family in ("gemma2", "gemma3"):
    hf.update(query_pre_attn_scalar=cfg.query_scale, attn_logit_softcapping=cfg.attn_logit_softcap,
              final_logit_softcapping=cfg.final_logit_softcap, sliding_window=cfg.sliding_window,
              layer_types=[f"{t}_attention" for t in cfg.layer_types], attention_bias=False)
  if cfg.family == "gemma3":
    hf["rope_local_base_freq"] = cfg.local_rope_theta
  return hf


def hf_config_from_model(cfg: ModelConfig, dtype: str = "float32") -> dict[str, Any]:
  """The config.json transformers needs to rebuild `cfg` (transformers 4 spelling + layer_types)."""
  if cfg.qkv_bias and cfg.family != "qwen2":
    raise CheckpointError(f"A {cfg.family} model with q/k/v biases has no transformers equivalent; export it "
                          "as qwen2.")
  model_type = MODEL_TYPES[cfg.family]
  eos = list(cfg.eos_token_ids)
  hf: dict[str, Any] = {
      "architectures": [HF_FAMILIES[model_type][1]],
      "model_type": model_type,
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
      **_family_fields(cfg),
  }
  if cfg.rope_scaling is not None:
    hf["rope_scaling"] = _rope_scaling_dict(cfg.rope_scaling)
  return hf
