"""Declarative maps between stored tensor names and our parameter paths, per format and family.

Each `KeyRule` pairs a stored-name template with a parameter-path template and
a `Layout`. Templates share named fields, e.g.

  "model.layers.{layer}.self_attn.{qkv}_proj.weight" <-> "layers/{layer}/attn/{qkv}_proj/kernel"

and `FIELDS` says what each field may match, so one rule works in both
directions: import (stored name -> path) and export (path -> stored name).
Adding a family or a format is adding a rule list here, not code.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Iterable

from inoc_jax.model.config import FAMILIES
from inoc_jax.weights import layout as L

FIELDS = {
    "layer": r"\d+",
    "qkv": r"q|k|v",
    "qk": r"q|k",
    "mlp": r"gate|up|down",
}


@dataclasses.dataclass(frozen=True)
class KeyRule:
  stored: str
  param: str
  layout: L.Layout = L.SAME

  @functools.cached_property
  def _stored_re(self) -> re.Pattern:
    return _template_regex(self.stored, sep=".")

  @functools.cached_property
  def _param_re(self) -> re.Pattern:
    return _template_regex(self.param, sep="/")

  def param_for(self, stored_name: str) -> str | None:
    m = self._stored_re.fullmatch(stored_name)
    return None if m is None else self.param.format(**m.groupdict())

  def stored_for(self, param_path: str) -> str | None:
    m = self._param_re.fullmatch(param_path)
    return None if m is None else self.stored.format(**m.groupdict())


def _template_regex(template: str, sep: str) -> re.Pattern:
  parts = re.split(r"(\{\w+\})", template)
  pattern = "".join(
      f"(?P<{p[1:-1]}>{FIELDS[p[1:-1]]})" if p.startswith("{") else re.escape(p) for p in parts)
  return re.compile(pattern)


@dataclasses.dataclass(frozen=True)
class KeyMap:
  """The rules of one format + family, and stored names to skip silently."""

  rules: tuple[KeyRule, ...]
  ignored: tuple[str, ...] = ()

  def param_for(self, stored_name: str) -> tuple[str, L.Layout] | None:
    for rule in self.rules:
      path = rule.param_for(stored_name)
      if path is not None:
        return path, rule.layout
    return None

  def stored_for(self, param_path: str) -> tuple[str, L.Layout] | None:
    for rule in self.rules:
      name = rule.stored_for(param_path)
      if name is not None:
        return name, rule.layout
    return None

  def is_ignored(self, stored_name: str) -> bool:
    return any(re.fullmatch(p, stored_name) for p in self.ignored)

  def plan(self, stored_names: Iterable[str]) -> tuple[dict[str, tuple[str, L.Layout]], list[str]]:
    """({param path: (stored name, layout)}, stored names no rule claims)."""
    planned, unmatched = {}, []
    for name in stored_names:
      found = self.param_for(name)
      if found is None:
        if not self.is_ignored(name):
          unmatched.append(name)
        continue
      path, layout = found
      planned[path] = (name, layout)
    return planned, unmatched


# -- Hugging Face transformers (Llama, Mistral, Qwen2, Qwen3, Qwen3-MoE, Gemma, Gemma2, Gemma3ForCausalLM) ----

def _hf_rules(family: str) -> tuple[KeyRule, ...]:
  layer = "model.layers.{layer}"
  if family in ("gemma2", "gemma3"):
    # Sandwich blocks: HF's post_attention_layernorm is the norm *after* attention here, and the
    # pre-MLP norm is pre_feedforward_layernorm (in the other families post_attention_layernorm is that).
    norms = (KeyRule(f"{layer}.post_attention_layernorm.weight", "layers/{layer}/post_attn_norm/scale"),
             KeyRule(f"{layer}.pre_feedforward_layernorm.weight", "layers/{layer}/mlp_norm/scale"),
             KeyRule(f"{layer}.post_feedforward_layernorm.weight", "layers/{layer}/post_mlp_norm/scale"))
  else:
    norms = (KeyRule(f"{layer}.post_attention_layernorm.weight", "layers/{layer}/mlp_norm/scale"),)
  qk_norms = ()
  if family in ("qwen3", "gemma3", "qwen3_moe"):
    qk_norms = (KeyRule(f"{layer}.self_attn.{{qk}}_norm.weight", "layers/{layer}/attn/{qk}_norm/scale"),)
  # MoE experts: the per-expert tensors stacked by weights/expert_stacking.py, [E, out, in] -> [E, in, out]
  experts = (KeyRule(f"{layer}.mlp.gate.weight", "layers/{layer}/mlp/router/kernel", L.LINEAR),
             KeyRule(f"{layer}.mlp.experts.{{mlp}}_proj.weight", "layers/{layer}/mlp/experts/{mlp}_proj/kernel",
                     L.EXPERTS)) if family == "qwen3_moe" else ()
  return (
      KeyRule("model.embed_tokens.weight", "embedder/embedding"),
      KeyRule(f"{layer}.input_layernorm.weight", "layers/{layer}/attn_norm/scale"),
      KeyRule(f"{layer}.self_attn.{{qkv}}_proj.weight", "layers/{layer}/attn/{qkv}_proj/kernel", L.TO_HEADS),
      KeyRule(f"{layer}.self_attn.{{qkv}}_proj.bias", "layers/{layer}/attn/{qkv}_proj/bias", L.BIAS_HEADS),
      KeyRule(f"{layer}.self_attn.o_proj.weight", "layers/{layer}/attn/o_proj/kernel", L.FROM_HEADS),
      *qk_norms,
      *norms,
      KeyRule(f"{layer}.mlp.{{mlp}}_proj.weight", "layers/{layer}/mlp/{mlp}_proj/kernel", L.LINEAR),
      *experts,
      KeyRule("model.norm.weight", "final_norm/scale"),
      KeyRule("lm_head.weight", "lm_head/kernel", L.LINEAR),
  )


# The families share tensor names and layouts in transformers (Gemma-2/3 add their sandwich norms,
# Qwen3/Gemma-3 their q/k norms): RoPE is stored in the rotate-half order we use, and the Gemmas'
# checkpoint norms are the w of (1 + w), which is what our RMSNorm stores. Tied models may still
# carry a copy of the embedding as lm_head.weight; it is skipped when there is no head.
HF_KEY_MAPS = {
    family: KeyMap(_hf_rules(family), ignored=(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",))
    for family in FAMILIES
}


# -- GGUF (llama.cpp's convert_hf_to_gguf.py tensor names) ---------------------------

def _gguf_rules(family: str) -> tuple[KeyRule, ...]:
  blk = "blk.{layer}"
  norm = L.SAME
  qk = L.TO_HEADS
  qk_bias = L.BIAS_HEADS
  if family == "llama":
    # llama.cpp rotates pairs of adjacent rows, so its converter interleaves the two
    # halves of every q/k head; undo that to get back the rotate-half order.
    qk = L.with_hooks(L.TO_HEADS, [L.rope_interleaved_to_halves], [L.rope_halves_to_interleaved])
    qk_bias = L.with_hooks(L.BIAS_HEADS, [L.rope_interleaved_to_halves], [L.rope_halves_to_interleaved])
  if family == "gemma":
    norm = L.with_hooks(L.SAME, [L.minus_one], [L.plus_one])  # the converter stores 1 + w
  return (
      KeyRule("token_embd.weight", "embedder/embedding"),
      KeyRule(f"{blk}.attn_norm.weight", "layers/{layer}/attn_norm/scale", norm),
      KeyRule(f"{blk}.attn_{{qk}}.weight", "layers/{layer}/attn/{qk}_proj/kernel", qk),
      KeyRule(f"{blk}.attn_{{qk}}.bias", "layers/{layer}/attn/{qk}_proj/bias", qk_bias),
      KeyRule(f"{blk}.attn_v.weight", "layers/{layer}/attn/v_proj/kernel", L.TO_HEADS),
      KeyRule(f"{blk}.attn_v.bias", "layers/{layer}/attn/v_proj/bias", L.BIAS_HEADS),
      KeyRule(f"{blk}.attn_output.weight", "layers/{layer}/attn/o_proj/kernel", L.FROM_HEADS),
      KeyRule(f"{blk}.ffn_norm.weight", "layers/{layer}/mlp_norm/scale", norm),
      KeyRule(f"{blk}.ffn_{{mlp}}.weight", "layers/{layer}/mlp/{mlp}_proj/kernel", L.LINEAR),
      KeyRule("output_norm.weight", "final_norm/scale", norm),
      KeyRule("output.weight", "lm_head/kernel", L.LINEAR),
  )


GGUF_KEY_MAPS = {family: KeyMap(_gguf_rules(family), ignored=(r"rope_freqs\.weight",))
                 for family in ("llama", "qwen2", "gemma")}
