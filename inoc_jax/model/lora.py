"""LoRA / rsLoRA adapter configuration and pure helpers.

Adapters live inside `Projection` (see layers.py) as `nnx.LoRAParam` leaves, so
`nnx.split(model, nnx.LoRAParam, ...)` separates trainable adapters from the
frozen base weights and the optimizer only ever sees the adapters.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

from inoc_jax.errors import ConfigError

# Projection names a LoRA target may use, as in PEFT's `target_modules`.
ALL_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """Adapter shape and scaling.

  Attributes:
    rank: r, the inner dimension of A [in, r] and B [r, out].
    alpha: LoRA alpha.
    dropout: dropout on the adapter input during training (PEFT semantics).
    rslora: scale by alpha / sqrt(r) (rank-stabilised LoRA) instead of alpha / r.
    targets: which projections carry adapters, subset of ALL_TARGETS.
  """

  rank: int = 8
  alpha: float = 16.0
  dropout: float = 0.0
  rslora: bool = True
  targets: tuple[str, ...] = ALL_TARGETS

  def __post_init__(self):
    if self.rank <= 0:
      raise ConfigError(f"lora.rank must be positive, got {self.rank}; set --config.lora.rank=8 or disable LoRA.")
    if not 0.0 <= self.dropout < 1.0:
      raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout}.")
    unknown = sorted(set(self.targets) - set(ALL_TARGETS))
    if unknown:
      raise ConfigError(f"Unknown LoRA targets {unknown}; use a subset of {','.join(ALL_TARGETS)}.")

  @property
  def scale(self) -> float:
    return self.alpha / (math.sqrt(self.rank) if self.rslora else self.rank)


def parse_targets(spec: str | Iterable[str]) -> tuple[str, ...]:
  """'q,k,v' or ['q', 'v'] or 'all' -> ('q', 'k', 'v')."""
  if isinstance(spec, str):
    if spec.strip() == "all":
      return ALL_TARGETS
    spec = [s for s in spec.replace(" ", "").split(",") if s]
  return tuple(spec)


def count_lora_params(model_cfg, lora: LoraConfig) -> int:
  """Trainable parameters of the adapters: r * (in + out) per adapted matrix."""
  d, h, f = model_cfg.d_model, model_cfg.head_dim, model_cfg.mlp_dim
  shapes = {
      "q": (d, model_cfg.num_heads * h),
      "k": (d, model_cfg.num_kv_heads * h),
      "v": (d, model_cfg.num_kv_heads * h),
      "o": (model_cfg.num_heads * h, d),
      "gate": (d, f),
      "up": (d, f),
      "down": (f, d),
  }
  per_layer = sum(lora.rank * (shapes[t][0] + shapes[t][1]) for t in lora.targets)
  return per_layer * model_cfg.num_layers

