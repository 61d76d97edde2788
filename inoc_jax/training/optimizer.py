"""optax optimizer and learning-rate schedules from the `optim` config block."""

from __future__ import annotations

import jax
import optax

from inoc_jax.errors import ConfigError
from inoc_jax.sharding.rules import path_to_str

SCHEDULES = ("constant", "linear", "cosine")


def learning_rate_schedule(optim, total_steps: int) -> optax.Schedule:
  """Linear warmup from 0 to `optim.lr`, then constant / linear-to-0 / cosine-to-`min_lr_ratio`·lr.

  `optim.warmup_steps` wins over `optim.warmup_ratio` (fraction of total steps)
  when both are set, as in HF Trainer.
  """
  if optim.schedule not in SCHEDULES:
    raise ConfigError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, not {optim.schedule!r}.")
  warmup = int(optim.get("warmup_steps", 0) or 0)
  if not warmup and optim.get("warmup_ratio", 0.0):
    warmup = int(round(optim.warmup_ratio * total_steps))
  warmup = min(warmup, total_steps)
  decay_steps = max(total_steps - warmup, 1)
  peak = optim.lr
  if optim.schedule == "constant":
    after = optax.constant_schedule(peak)
  elif optim.schedule == "linear":
    after = optax.linear_schedule(peak, 0.0, decay_steps)
  else:
    after = optax.cosine_decay_schedule(peak, decay_steps, alpha=optim.get("min_lr_ratio", 0.0))
  if not warmup:
    return after
  # HF semantics: lr at step s (0-based) is peak * s / warmup during warmup.
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def weight_decay_mask(params):
  """True for leaves that get weight decay: matrices, not norms or biases (rank < 2)."""
  def decays(path, leaf):
    name = path_to_str(path)
    return leaf.ndim >= 2 and not name.endswith("bias") and not name.endswith("scale")
  return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(optim, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW (decoupled weight decay on matrices only) with optional global-norm clipping."""
  if optim.name != "adamw":
    raise ConfigError(f"optim.name {optim.name!r} is not supported; use 'adamw'.")
  schedule = learning_rate_schedule(optim, total_steps)
  parts = []
  if optim.get("grad_clip_norm"):
    parts.append(optax.clip_by_global_norm(optim.grad_clip_norm))
  parts.append(optax.adamw(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps,
                           weight_decay=optim.weight_decay, mask=weight_decay_mask))
  return optax.chain(*parts), schedule
