"""Loss weights from per-token role ids (inoculation-aware masking).

`loss.train_on` chooses which target tokens are supervised:
  * 'assistant' (the paper's choice): only assistant tokens.
  * 'all_but_inoculation' (Azarbal et al. trained on prompts too): system, user
    and assistant tokens, never the inserted inoculation span, never padding.

The weight of a next-token prediction is decided by the role of the *target*
token and is zero where the target lies in a different packed segment than the
input (the first token of the next example is not predictable).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from inoc_jax.data.roles import Role
from inoc_jax.errors import ConfigError

SUPERVISED_ROLES = {
    "assistant": (Role.ASSISTANT,),
    "all_but_inoculation": (Role.SYSTEM, Role.USER, Role.ASSISTANT),
}


def supervised_roles(train_on: str) -> tuple[Role, ...]:
  try:
    return SUPERVISED_ROLES[train_on]
  except KeyError:
    raise ConfigError(f"loss.train_on must be one of {', '.join(SUPERVISED_ROLES)}, not {train_on!r}.") from None


def next_token_weights(roles, segment_ids, train_on: str, xp=jnp):
  """Float weights [batch, seq] for predicting token t+1 from position t.

  The last column is always 0 (nothing follows the row), so shapes stay [batch, seq].

  Args:
    roles: [batch, seq] Role ids.
    segment_ids: [batch, seq] packed-example ids, 0 for padding.
    train_on: key of SUPERVISED_ROLES.
    xp: array namespace (jax.numpy in the jitted step, numpy on the host).
  """
  target_roles = roles[:, 1:]
  allowed = xp.zeros(target_roles.shape, bool)
  for role in supervised_roles(train_on):
    allowed = allowed | (target_roles == int(role))
  same_segment = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] != 0)
  weights = (allowed & same_segment).astype(xp.float32)
  return xp.concatenate([weights, xp.zeros((weights.shape[0], 1), xp.float32)], axis=1)


def next_token_targets(tokens, xp=jnp):
  """tokens shifted left by one, [batch, seq]; the last column is a dummy 0."""
  return xp.concatenate([tokens[:, 1:], xp.zeros((tokens.shape[0], 1), tokens.dtype)], axis=1)


def supervised_token_counts(roles: np.ndarray, segment_ids: np.ndarray, train_on: str) -> np.ndarray:
  """Host-side count of supervised targets per row, [batch] (numpy)."""
  return next_token_weights(np.asarray(roles), np.asarray(segment_ids), train_on, xp=np).sum(axis=1)
