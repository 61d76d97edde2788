"""Building the model for a purpose: the one place the trainer, the checkpoint reader, the pretrained-weight
loader, the evaluator, the AOT check and the benchmarks get their Transformer from.

  training_spec(config, arch)          LoRA adapters (or every weight) trainable in float32; the frozen base
                                       of LoRA in model.base_dtype, its block kernels quantised by
                                       model.base_quant; remat; the attention kernel
  saved_spec(arch, lora, dtype, base, quant)  the tree a checkpoint was written with (to restore it)
  plain_spec(arch, dtype)              no adapters: sampling, judges, pretrained weights, merged LoRA, export
  random_model(arch, dtype, seed)      a random-init Transformer (`--checkpoint=random`, benchmarks)
  merged_for_sampling(...)             LoRA folded into the base kernels, each leaf on its sharding

A ModelSpec is a recipe, never an allocation: `spec.abstract()` gives shapes only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from inoc_jax.errors import ConfigError
from inoc_jax.model.config import ModelConfig
from inoc_jax.model.fused_attention import resolve_impl
from inoc_jax.model.lora import LoraConfig, parse_targets
from inoc_jax.model.merge import BASE_WEIGHTS, merge_lora_sharded
from inoc_jax.model.quantization import QuantConfig
from inoc_jax.model.transformer import Transformer
from inoc_jax.sharding import rules

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """How to build the model and which of its leaves are trainable."""

  build: Callable[[nnx.Rngs], Transformer]
  trainable: Any  # an nnx filter: nnx.LoRAParam for LoRA, nnx.Param for full fine-tuning
  quant: QuantConfig | None = None  # how the frozen block kernels are stored (None: dense)
  dense_build: Callable[[nnx.Rngs], Transformer] | None = None  # the same model with dense kernels

  def dense(self) -> "ModelSpec":
    """The same model with every kernel dense: what a weight loader reads before quantising."""
    return self if self.quant is None else ModelSpec(self.dense_build, self.trainable)

  def abstract(self) -> tuple[nnx.GraphDef, Any, Any]:
    """(graphdef, abstract params, abstract frozen) without allocating anything."""
    model = nnx.eval_shape(lambda: self.build(nnx.Rngs(0)))
    return nnx.split(model, self.trainable, ...)

  def split(self, model: Transformer):
    return nnx.split(model, self.trainable, ...)


def compute_dtype(name: str):
  """'float32' | 'bfloat16' (config model.dtype) -> the jnp dtype activations are computed in."""
  try:
    return DTYPES[name]
  except KeyError:
    raise ConfigError(f"model.dtype {name!r} is not one of {', '.join(DTYPES)}.") from None


def base_dtype(config):
  """The storage dtype of the frozen base weights (config `model.base_dtype`).

  LoRA trains float32 adapters beside a frozen base, which only ever enters a
  matmul cast to the compute dtype; 'auto' stores it in that compute dtype (a
  bf16 run holds a 7B base in 15 GB, not 30). Full fine-tuning trains every
  weight, so its master weights are float32 whatever this says.
  """
  name = config.model.get("base_dtype", "auto")
  if not config.lora.enabled:
    return jnp.float32
  return compute_dtype(config.model.dtype if name == "auto" else name)


def quant_config(config, arch: ModelConfig | None = None) -> QuantConfig | None:
  """How LoRA's frozen block kernels are stored (config `model.base_quant`: none | int8 | nf4).

  With `arch`, checks that NF4 blocks tile every kernel's last input axis (d_model for q/k/v/gate/up,
  head_dim for o, mlp_dim for down) before anything is built.
  """
  kind = config.model.get("base_quant", "none")
  if kind == "none":
    return None
  quant = QuantConfig(kind, config.model.get("quant_block_size", 64))
  if arch is not None:
    for name in ("d_model", "head_dim", "mlp_dim"):
      quant.check_axis(getattr(arch, name), f"the model's {name}")
  return quant


def lora_config(config) -> LoraConfig | None:
  """The run's adapters (config `lora.*`), or None for full fine-tuning."""
  if not config.lora.enabled:
    return None
  return LoraConfig(rank=config.lora.rank, alpha=config.lora.alpha, dropout=config.lora.dropout,
                    rslora=config.lora.rslora, targets=parse_targets(config.lora.targets))


def attention_impl(config, arch: ModelConfig, platform: str | None = None) -> str:
  """The training rows' attention kernel (config `model.attention_impl`) on `platform` (default: this
  process's)."""
  return resolve_impl(config.model.get("attention_impl", "auto"), platform=platform or jax.default_backend(),
                      seq_len=config.data.seq_len, packing=config.data.packing, softcap=arch.attn_logit_softcap)


def training_spec(config, arch: ModelConfig, attention: str | None = None) -> ModelSpec:
  """The model a run trains: adapters (always float32) when lora.enabled, else every weight in float32; the
  frozen base in `base_dtype(config)`; activations in model.dtype; attention by `attention_impl` unless
  `attention` names the kernel (the AOT check compiles a TPU run's on CPU)."""
  lora, dtype, remat = lora_config(config), compute_dtype(config.model.dtype), config.model.remat
  param_dtype, impl = base_dtype(config), attention or attention_impl(config, arch)
  return _spec(lora, quant_config(config, arch), lambda rngs, quant: Transformer(
      arch, lora=lora, dtype=dtype, param_dtype=param_dtype, remat=remat, attention_impl=impl, quant=quant,
      rngs=rngs))


def saved_spec(arch: ModelConfig, lora: LoraConfig | None, dtype=jnp.float32, base=jnp.float32,
               quant: QuantConfig | None = None) -> ModelSpec:
  """The tree a training checkpoint holds (params = adapters or all weights, frozen = the rest in `base`,
  block kernels stored by `quant`)."""
  return _spec(lora, quant, lambda rngs, quant: Transformer(arch, lora=lora, dtype=dtype, param_dtype=base,
                                                            quant=quant, rngs=rngs))


def _spec(lora: LoraConfig | None, quant: QuantConfig | None, make: Callable) -> ModelSpec:
  """ModelSpec of `make(rngs, quant)`, with its dense twin when quantised."""
  return ModelSpec(lambda rngs: make(rngs, quant), nnx.LoRAParam if lora else nnx.Param, quant,
                   None if quant is None else (lambda rngs: make(rngs, None)))


def plain_spec(arch: ModelConfig, dtype=jnp.float32) -> ModelSpec:
  """No adapters: what samples, judges, loads pretrained weights and receives merged LoRA."""
  return ModelSpec(lambda rngs: Transformer(arch, dtype=dtype, rngs=rngs), nnx.Param)


def random_model(arch: ModelConfig, dtype=jnp.float32, seed: int = 0) -> Transformer:
  return plain_spec(arch, dtype).build(nnx.Rngs(seed))


def base_param_shardings(spec: ModelSpec, mesh: Mesh) -> tuple[Any, Any]:
  """(abstract nnx.Param state without adapters, its shardings): the targets a weight loader fills."""
  model = nnx.eval_shape(lambda: spec.build(nnx.Rngs(0)))
  _, base, _ = nnx.split(model, BASE_WEIGHTS, ...)
  return base, rules.tree_shardings(base, mesh)


def merged_for_sampling(graphdef: nnx.GraphDef, states: tuple, arch: ModelConfig, mesh: Mesh,
                        dtype=jnp.float32) -> tuple[nnx.GraphDef, Any]:
  """(plain graphdef, merged weights): LoRA folded into the base kernels, each leaf written to its sharding.

  Decoding a merged model skips the two adapter matmuls per projection at every generated token.
  """
  plain = plain_spec(arch, dtype)
  _, shardings = base_param_shardings(plain, mesh)
  plain_graphdef = nnx.graphdef(nnx.eval_shape(lambda: plain.build(nnx.Rngs(0))))
  return plain_graphdef, merge_lora_sharded(graphdef, states, shardings)
