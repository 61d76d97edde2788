"""Test helper: write an HF checkpoint as GGUF the way llama.cpp's convert_hf_to_gguf.py does.

Written independently of inoc_jax's key maps (names, the q/k row permutation of
llama, Gemma's +1 on norms are spelled out here), so importing the file checks
the importer against llama.cpp's conventions rather than against itself.
"""

from __future__ import annotations

import json
import os

import gguf
import numpy as np
from safetensors.numpy import load_file

HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER_TO_GGUF = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
  """convert_hf_to_gguf.LlamaModel.permute: rotate-half rows -> adjacent-pair rows, per head."""
  return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
          .swapaxes(1, 2).reshape(weights.shape))


def gguf_name(hf_name: str) -> str:
  if hf_name in HF_TO_GGUF:
    return HF_TO_GGUF[hf_name]
  _, _, layer, rest = hf_name.split(".", 3)
  return f"blk.{layer}.{LAYER_TO_GGUF[rest]}"


def write_gguf(hf_dir: str, path: str, matrix_type: str = "F32", rope_original_context: int | None = None) -> str:
  """Converts `hf_dir` (config.json + model.safetensors) to a GGUF file; matrices stored as `matrix_type`."""
  with open(os.path.join(hf_dir, "config.json"), encoding="utf-8") as f:
    cfg = json.load(f)
  arch = cfg["model_type"]
  tensors = load_file(os.path.join(hf_dir, "model.safetensors"))
  heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
  head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
  writer = gguf.GGUFWriter(path, arch)
  writer.add_context_length(cfg["max_position_embeddings"])
  writer.add_embedding_length(cfg["hidden_size"])
  writer.add_block_count(cfg["num_hidden_layers"])
  writer.add_feed_forward_length(cfg["intermediate_size"])
  writer.add_head_count(heads)
  writer.add_head_count_kv(kv_heads)
  writer.add_key_length(head_dim)
  writer.add_value_length(head_dim)
  writer.add_rope_dimension_count(head_dim)
  rope = dict(cfg.get("rope_parameters") or {})
  writer.add_rope_freq_base(float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))))
  writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
  writer.add_vocab_size(cfg["vocab_size"])
  writer.add_bos_token_id(cfg["bos_token_id"])
  writer.add_eos_token_id(cfg["eos_token_id"])
  writer.add_pad_token_id(cfg["pad_token_id"])
  writer.add_file_type(gguf.LlamaFileType.ALL_F32 if matrix_type == "F32" else gguf.LlamaFileType.MOSTLY_Q8_0)
  if rope.get("rope_type") == "llama3":
    # convert_hf_to_gguf stores llama3 scaling as one divisor per frequency.
    inv = 1.0 / rope["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * np.pi / inv
    low_wl = rope["original_max_position_embeddings"] / rope["low_freq_factor"]
    high_wl = rope["original_max_position_embeddings"] / rope["high_freq_factor"]
    smooth = ((rope["original_max_position_embeddings"] / wavelen - rope["low_freq_factor"])
              / (rope["high_freq_factor"] - rope["low_freq_factor"]))
    factors = np.where(wavelen < high_wl, 1.0, np.where(wavelen > low_wl, rope["factor"],
                                                         1 / ((1 - smooth) / rope["factor"] + smooth)))
    writer.add_tensor("rope_freqs.weight", factors.astype(np.float32))
  if rope_original_context is not None:
    writer.add_uint32(f"{arch}.rope.scaling.original_context_length", rope_original_context)
  for hf_name, value in tensors.items():
    value = value.astype(np.float32)
    if arch == "llama" and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
      value = llama_cpp_permute(value, heads)
    if arch == "llama" and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
      value = llama_cpp_permute(value, kv_heads)
    if arch == "gemma" and hf_name.endswith("norm.weight"):
      value = value + 1
    if cfg.get("tie_word_embeddings") and hf_name == "lm_head.weight":
      continue
    if value.ndim == 2 and matrix_type != "F32":
      qtype = gguf.GGMLQuantizationType[matrix_type]
      writer.add_tensor(gguf_name(hf_name), gguf.quants.quantize(value, qtype),
                        raw_dtype=qtype)
    else:
      writer.add_tensor(gguf_name(hf_name), value)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  return path
