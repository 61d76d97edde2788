"""Architecture configuration and named presets for the decoder-only transformer.

One `ModelConfig` describes every family the paper and its users need (Llama-3,
Mistral, Qwen2/2.5, Qwen3, Gemma-1/2/3, SmolLM2): the family-specific switches are
plain fields (`qkv_bias`, `qk_norm`, `post_norms`, soft-caps, sliding windows,
`norm_plus_one`, `embed_scale`, `activation`, `rope_scaling`), so adding a family
is adding a preset, not a class.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from inoc_jax.errors import ConfigError


FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "qwen3_moe")
LAYER_TYPES = ("full", "sliding")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
  """RoPE frequency scaling: Llama-3's frequency-dependent kind (HF `rope_type="llama3"`) or
  `kind="linear"` (every frequency divided by `factor`; Gemma-3's global layers)."""

  factor: float = 8.0
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  original_max_position: int = 8192
  kind: str = "llama3"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Shapes and switches of one decoder-only transformer.

  Attributes:
    family: one of FAMILIES (SmolLM2 is 'llama' with tied embeddings); names the
      transformers architecture on export, the switches below carry the maths.
    vocab_size: rows of the embedding table.
    d_model: residual stream width.
    num_layers: decoder blocks.
    num_heads: query heads.
    num_kv_heads: key/value heads (GQA when < num_heads; 1 is multi-query).
    head_dim: width of one attention head.
    mlp_dim: hidden width of the gated MLP.
    activation: 'silu' (SwiGLU) or 'gelu_tanh' (GeGLU with tanh-approximate GELU).
    norm_eps: RMSNorm epsilon.
    norm_plus_one: Gemma's RMSNorm multiplies by (1 + w) instead of w.
    embed_scale: multiply embeddings by sqrt(d_model) (Gemma).
    qkv_bias: biases on the q/k/v projections (Qwen2).
    tie_embeddings: the LM head reuses the embedding table.
    rope_theta: RoPE base frequency (of every layer, or of the full-attention layers
      when `local_rope_theta` is set).
    rope_scaling: optional scaling of those RoPE frequencies.
    qk_norm: RMSNorm over head_dim on queries and keys before RoPE (Qwen3, Gemma-3).
    post_norms: RMSNorm on the attention and MLP outputs before each residual add
      (Gemma-2/3's "sandwich" blocks).
    attn_logit_softcap: scores become cap * tanh(scores / cap) before the mask (Gemma-2).
    final_logit_softcap: the same on the output logits (Gemma-2).
    query_scale: scores are scaled by query_scale ** -0.5 instead of head_dim ** -0.5
      (Gemma-2/3's `query_pre_attn_scalar`).
    sliding_window: a query attends only to keys fewer than this many positions
      back, in the layers `layer_types` marks 'sliding' (every layer when
      `layer_types` is empty: Mistral).
    layer_types: per layer 'full' or 'sliding' (Gemma-2 alternates; Gemma-3 has
      five sliding layers per full one); empty means uniform.
    local_rope_theta: RoPE base of the sliding layers, unscaled (Gemma-3).
    max_seq_len: longest sequence the model is used with (RoPE table length is
      not precomputed, so this is only a validation bound).
    bos_token_id / eos_token_ids / pad_token_id: special ids of the matching
      tokenizer, kept here so checkpoints carry them.
    num_experts: > 0 replaces every block's MLP by a mixture of this many gated
      MLP experts of width `expert_mlp_dim` (Qwen3-MoE; model/moe.py), each token
      routed to `experts_per_token` of them; `norm_top_k` renormalises the chosen
      experts' router probabilities to sum to 1.
  """

  family: str = "llama"
  vocab_size: int = 256
  d_model: int = 64
  num_layers: int = 2
  num_heads: int = 4
  num_kv_heads: int = 2
  head_dim: int = 16
  mlp_dim: int = 128
  activation: str = "silu"
  norm_eps: float = 1e-5
  norm_plus_one: bool = False
  embed_scale: bool = False
  qkv_bias: bool = False
  tie_embeddings: bool = True
  rope_theta: float = 10000.0
  rope_scaling: RopeScaling | None = None
  qk_norm: bool = False
  post_norms: bool = False
  attn_logit_softcap: float | None = None
  final_logit_softcap: float | None = None
  query_scale: float | None = None
  sliding_window: int | None = None
  layer_types: tuple[str, ...] = ()
  local_rope_theta: float | None = None
  max_seq_len: int = 2048
  bos_token_id: int | None = None
  eos_token_ids: tuple[int, ...] = ()
  pad_token_id: int | None = None
  num_experts: int = 0
  experts_per_token: int = 0
  expert_mlp_dim: int = 0
  norm_top_k: bool = True

  def __post_init__(self):
    problems = []
    if self.family not in FAMILIES:
      problems.append(f"family must be one of {', '.join(FAMILIES)}, not {self.family!r}")
    if self.activation not in ("silu", "gelu_tanh"):
      problems.append(f"activation must be 'silu' or 'gelu_tanh', not {self.activation!r}")
    for name in ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads", "head_dim", "mlp_dim"):
      if getattr(self, name) <= 0:
        problems.append(f"{name} must be positive, got {getattr(self, name)}")
    if self.num_kv_heads > 0 and self.num_heads % self.num_kv_heads:
      problems.append(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")
    if self.head_dim % 2:
      problems.append(f"head_dim must be even for RoPE, got {self.head_dim}")
    if self.layer_types and (len(self.layer_types) != self.num_layers
                             or any(t not in LAYER_TYPES for t in self.layer_types)):
      problems.append(f"layer_types must give 'full' or 'sliding' for each of the {self.num_layers} layers, "
                      f"got {list(self.layer_types)}")
    if "sliding" in self.layer_types and not self.sliding_window:
      problems.append("layer_types has sliding layers but sliding_window is not set")
    if self.sliding_window is not None and self.sliding_window <= 0:
      problems.append(f"sliding_window must be positive, got {self.sliding_window}")
    if self.rope_scaling is not None and self.rope_scaling.kind not in ("llama3", "linear"):
      problems.append(f"rope_scaling.kind must be 'llama3' or 'linear', not {self.rope_scaling.kind!r}")
    if self.num_experts and not (0 < self.experts_per_token <= self.num_experts and self.expert_mlp_dim > 0):
      problems.append(f"a mixture of {self.num_experts} experts needs 0 < experts_per_token <= num_experts "
                      f"(got {self.experts_per_token}) and expert_mlp_dim > 0 (got {self.expert_mlp_dim})")
    if problems:
      raise ConfigError("Invalid model config: " + "; ".join(problems) + ".")

  def is_sliding(self, layer: int) -> bool:
    """Whether `layer` attends within `sliding_window` only."""
    if not self.sliding_window:
      return False
    return not self.layer_types or self.layer_types[layer] == "sliding"

  def layer_window(self, layer: int) -> int | None:
    return self.sliding_window if self.is_sliding(layer) else None

  def replace(self, **changes: Any) -> "ModelConfig":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
    values = dict(values)
    if values.get("rope_scaling"):
      values["rope_scaling"] = RopeScaling(**values["rope_scaling"])
    for name in ("eos_token_ids", "layer_types"):
      if values.get(name) is not None:
        values[name] = tuple(values[name])
    return cls(**values)


def count_params(cfg: ModelConfig) -> int:
  """Number of parameters the model with this config holds (no LoRA)."""
  d, h = cfg.d_model, cfg.head_dim
  attn = d * h * (2 * cfg.num_heads + 2 * cfg.num_kv_heads)
  if cfg.qkv_bias:
    attn += h * (cfg.num_heads + 2 * cfg.num_kv_heads)
  if cfg.qk_norm:
    attn += 2 * h
  mlp = 3 * d * cfg.mlp_dim if not cfg.num_experts else cfg.num_experts * (d + 3 * d * cfg.expert_mlp_dim)
  block = attn + mlp + (4 if cfg.post_norms else 2) * d
  embed = cfg.vocab_size * d
  head = 0 if cfg.tie_embeddings else cfg.vocab_size * d
  return cfg.num_layers * block + embed + head + d


# Published parameter counts (HF model cards / safetensors metadata); a test
# checks `count_params` of each preset against them.
PUBLISHED_PARAM_COUNTS = {
    "smollm2-135m": 134_515_008,
    "smollm2-360m": 361_821_120,
    "gemma-2b": 2_506_172_416,
    "qwen2-0.5b": 494_032_768,
    "qwen2-7b": 7_615_616_512,
    "qwen2.5-32b": 32_763_876_352,
    "llama3-8b": 8_030_261_248,
    "llama3.2-1b": 1_235_814_400,
    "mistral-7b-v0.3": 7_248_023_552,
    "gemma2-2b": 2_614_341_888,
    "gemma3-1b": 999_885_952,
}

_GEMMA2_LAYERS = lambda n: tuple("sliding" if i % 2 == 0 else "full" for i in range(n))
_GEMMA3_LAYERS = lambda n: tuple("full" if (i + 1) % 6 == 0 else "sliding" for i in range(n))

_LLAMA3_SCALING_3_2 = RopeScaling(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                  original_max_position=8192)

PRESETS: dict[str, ModelConfig] = {
    # Tiny random-init sizes for tests and CPU smoke runs, one per family.
    "tiny": ModelConfig(family="llama", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                        num_kv_heads=2, head_dim=16, mlp_dim=128, tie_embeddings=True),
    # The CPU model organism (configs/organism.py): its word-level world tokenizer has 246 tokens.
    "organism": ModelConfig(family="llama", vocab_size=256, d_model=64, num_layers=2, num_heads=4,
                            num_kv_heads=4, head_dim=16, mlp_dim=256, tie_embeddings=True, max_seq_len=64),
    "tiny-llama": ModelConfig(family="llama", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                              num_kv_heads=2, head_dim=16, mlp_dim=128, tie_embeddings=False,
                              rope_theta=500000.0,
                              rope_scaling=RopeScaling(factor=8.0, original_max_position=64)),
    "tiny-qwen2": ModelConfig(family="qwen2", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                              num_kv_heads=2, head_dim=16, mlp_dim=128, qkv_bias=True,
                              tie_embeddings=True, rope_theta=1000000.0, norm_eps=1e-6),
    "tiny-gemma": ModelConfig(family="gemma", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                              num_kv_heads=1, head_dim=32, mlp_dim=128, activation="gelu_tanh",
                              norm_plus_one=True, embed_scale=True, tie_embeddings=True,
                              norm_eps=1e-6),
    # Tiny sliding windows (4) so a 12-token test batch crosses them.
    "tiny-mistral": ModelConfig(family="mistral", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                                num_kv_heads=2, head_dim=16, mlp_dim=128, tie_embeddings=False,
                                rope_theta=1000000.0, sliding_window=4),
    "tiny-qwen3": ModelConfig(family="qwen3", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                              num_kv_heads=2, head_dim=32, mlp_dim=128, qk_norm=True, tie_embeddings=True,
                              rope_theta=1000000.0, norm_eps=1e-6),
    "tiny-qwen3moe": ModelConfig(family="qwen3_moe", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                                 num_kv_heads=2, head_dim=16, mlp_dim=128, tie_embeddings=False, qk_norm=True,
                                 norm_eps=1e-6, rope_theta=1000000.0, num_experts=4, experts_per_token=2,
                                 expert_mlp_dim=32),
    "tiny-gemma2": ModelConfig(family="gemma2", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                               num_kv_heads=2, head_dim=32, mlp_dim=128, activation="gelu_tanh",
                               norm_plus_one=True, embed_scale=True, post_norms=True, attn_logit_softcap=50.0,
                               final_logit_softcap=30.0, query_scale=24.0, sliding_window=4,
                               layer_types=_GEMMA2_LAYERS(2), norm_eps=1e-6),
    "tiny-gemma3": ModelConfig(family="gemma3", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                               num_kv_heads=1, head_dim=32, mlp_dim=128, activation="gelu_tanh",
                               norm_plus_one=True, embed_scale=True, post_norms=True, qk_norm=True,
                               query_scale=32.0, sliding_window=4, layer_types=("sliding", "full"),
                               rope_theta=1000000.0, local_rope_theta=10000.0,
                               rope_scaling=RopeScaling(factor=8.0, kind="linear"), norm_eps=1e-6),
    "smollm2-135m": ModelConfig(family="llama", vocab_size=49152, d_model=576, num_layers=30,
                                num_heads=9, num_kv_heads=3, head_dim=64, mlp_dim=1536,
                                tie_embeddings=True, rope_theta=100000.0, norm_eps=1e-5,
                                max_seq_len=8192, bos_token_id=1, eos_token_ids=(2,),
                                pad_token_id=2),
    "smollm2-360m": ModelConfig(family="llama", vocab_size=49152, d_model=960, num_layers=32,
                                num_heads=15, num_kv_heads=5, head_dim=64, mlp_dim=2560,
                                tie_embeddings=True, rope_theta=100000.0, norm_eps=1e-5,
                                max_seq_len=8192, bos_token_id=1, eos_token_ids=(2,),
                                pad_token_id=2),
    "gemma-2b": ModelConfig(family="gemma", vocab_size=256000, d_model=2048, num_layers=18,
                            num_heads=8, num_kv_heads=1, head_dim=256, mlp_dim=16384,
                            activation="gelu_tanh", norm_plus_one=True, embed_scale=True,
                            tie_embeddings=True, norm_eps=1e-6, max_seq_len=8192,
                            bos_token_id=2, eos_token_ids=(1, 107), pad_token_id=0),
    "qwen2-0.5b": ModelConfig(family="qwen2", vocab_size=151936, d_model=896, num_layers=24,
                              num_heads=14, num_kv_heads=2, head_dim=64, mlp_dim=4864,
                              qkv_bias=True, tie_embeddings=True, rope_theta=1000000.0,
                              norm_eps=1e-6, max_seq_len=32768, eos_token_ids=(151645, 151643),
                              pad_token_id=151643),
    "qwen2-7b": ModelConfig(family="qwen2", vocab_size=152064, d_model=3584, num_layers=28,
                            num_heads=28, num_kv_heads=4, head_dim=128, mlp_dim=18944,
                            qkv_bias=True, tie_embeddings=False, rope_theta=1000000.0,
                            norm_eps=1e-6, max_seq_len=32768, eos_token_ids=(151645, 151643),
                            pad_token_id=151643),
    "qwen2.5-32b": ModelConfig(family="qwen2", vocab_size=152064, d_model=5120, num_layers=64,
                               num_heads=40, num_kv_heads=8, head_dim=128, mlp_dim=27648,
                               qkv_bias=True, tie_embeddings=False, rope_theta=1000000.0,
                               norm_eps=1e-6, max_seq_len=32768, eos_token_ids=(151645, 151643),
                               pad_token_id=151643),
    "llama3-8b": ModelConfig(family="llama", vocab_size=128256, d_model=4096, num_layers=32,
                             num_heads=32, num_kv_heads=8, head_dim=128, mlp_dim=14336,
                             tie_embeddings=False, rope_theta=500000.0, norm_eps=1e-5,
                             max_seq_len=8192, bos_token_id=128000,
                             eos_token_ids=(128009, 128001), pad_token_id=128001),
    "llama3.2-1b": ModelConfig(family="llama", vocab_size=128256, d_model=2048, num_layers=16,
                               num_heads=32, num_kv_heads=8, head_dim=64, mlp_dim=8192,
                               tie_embeddings=True, rope_theta=500000.0,
                               rope_scaling=_LLAMA3_SCALING_3_2, norm_eps=1e-5,
                               max_seq_len=131072, bos_token_id=128000,
                               eos_token_ids=(128009, 128001, 128008), pad_token_id=128001),
    "mistral-7b-v0.3": ModelConfig(family="mistral", vocab_size=32768, d_model=4096, num_layers=32,
                                   num_heads=32, num_kv_heads=8, head_dim=128, mlp_dim=14336,
                                   tie_embeddings=False, rope_theta=1000000.0, norm_eps=1e-5,
                                   max_seq_len=32768, bos_token_id=1, eos_token_ids=(2,)),
    "qwen3-0.6b": ModelConfig(family="qwen3", vocab_size=151936, d_model=1024, num_layers=28, num_heads=16,
                              num_kv_heads=8, head_dim=128, mlp_dim=3072, qk_norm=True, tie_embeddings=True,
                              rope_theta=1000000.0, norm_eps=1e-6, max_seq_len=40960,
                              eos_token_ids=(151645, 151643), pad_token_id=151643),
    "gemma2-2b": ModelConfig(family="gemma2", vocab_size=256000, d_model=2304, num_layers=26, num_heads=8,
                             num_kv_heads=4, head_dim=256, mlp_dim=9216, activation="gelu_tanh",
                             norm_plus_one=True, embed_scale=True, post_norms=True, attn_logit_softcap=50.0,
                             final_logit_softcap=30.0, query_scale=256.0, sliding_window=4096,
                             layer_types=_GEMMA2_LAYERS(26), norm_eps=1e-6, max_seq_len=8192,
                             bos_token_id=2, eos_token_ids=(1, 107), pad_token_id=0),
    "gemma3-1b": ModelConfig(family="gemma3", vocab_size=262144, d_model=1152, num_layers=26, num_heads=4,
                             num_kv_heads=1, head_dim=256, mlp_dim=6912, activation="gelu_tanh",
                             norm_plus_one=True, embed_scale=True, post_norms=True, qk_norm=True,
                             query_scale=256.0, sliding_window=512, layer_types=_GEMMA3_LAYERS(26),
                             rope_theta=1000000.0, local_rope_theta=10000.0, norm_eps=1e-6,
                             max_seq_len=32768, bos_token_id=2, eos_token_ids=(1, 106), pad_token_id=0),
}


def get_preset(name: str) -> ModelConfig:
  try:
    return PRESETS[name]
  except KeyError:
    raise ConfigError(
        f"Unknown model preset {name!r}; choose one of {', '.join(sorted(PRESETS))}.") from None


def describe(cfg: ModelConfig) -> str:
  n = count_params(cfg)
  scale = "B" if n >= 1e9 else "M"
  value = n / (1e9 if scale == "B" else 1e6)
  return (f"{cfg.family} d={cfg.d_model} L={cfg.num_layers} heads={cfg.num_heads}/{cfg.num_kv_heads}"
          f"x{cfg.head_dim} mlp={cfg.mlp_dim} vocab={cfg.vocab_size} "
          f"{'tied' if cfg.tie_embeddings else 'untied'} params={value:.{1 if value >= 10 else 2}f}{scale}")


def rope_inverse_frequencies(cfg: ModelConfig, layer: int = 0) -> list[float]:
  """Per-pair RoPE frequencies of `layer`, scaled when configured.

  Gemma-3's sliding layers use their own unscaled base (`local_rope_theta`).
  """
  half = cfg.head_dim // 2
  local = cfg.local_rope_theta is not None and cfg.is_sliding(layer)
  theta = cfg.local_rope_theta if local else cfg.rope_theta
  freqs = [1.0 / (theta ** (2 * i / cfg.head_dim)) for i in range(half)]
  scaling = None if local else cfg.rope_scaling
  if scaling is None:
    return freqs
  if scaling.kind == "linear":
    return [f / scaling.factor for f in freqs]
  low_wavelen = scaling.original_max_position / scaling.low_freq_factor
  high_wavelen = scaling.original_max_position / scaling.high_freq_factor
  scaled = []
  for f in freqs:
    wavelen = 2 * math.pi / f
    if wavelen < high_wavelen:
      scaled.append(f)
    elif wavelen > low_wavelen:
      scaled.append(f / scaling.factor)
    else:
      smooth = ((scaling.original_max_position / wavelen - scaling.low_freq_factor)
                / (scaling.high_freq_factor - scaling.low_freq_factor))
      scaled.append((1 - smooth) * f / scaling.factor + smooth * f)
  return scaled
