"""Pure functions from next-token logits to tokens: greedy, temperature, top-k, top-p.

The order is the one HF `generate` and vLLM use: divide by the temperature,
keep the top-k candidates, then keep the smallest prefix of them (by
probability) whose mass reaches top-p, then draw. Every row has its own key,
so a row's draw does not depend on the other rows of the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from inoc_jax.sampling.params import SamplingMode


def sort_descending(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """([B, V] logits sorted high to low, [B, V] int32 token ids in that order)."""
  ids = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
  negated, ids = jax.lax.sort((-logits, ids), dimension=logits.ndim - 1, num_keys=1)
  return -negated, ids


def nucleus_mask(sorted_logits: jax.Array, top_p: jax.Array) -> jax.Array:
  """Which candidates top-p keeps, for logits sorted high to low ([B, n] bool).

  A candidate is kept when the probability mass strictly before it is below
  top_p, so the most likely candidate is always kept.
  """
  probs = jax.nn.softmax(sorted_logits.astype(jnp.float32), axis=-1)
  mass_before = jnp.cumsum(probs, axis=-1) - probs
  return mass_before < top_p


def sample_tokens(logits: jax.Array, keys: jax.Array, mode: SamplingMode, temperature: jax.Array,
                  top_p: jax.Array) -> jax.Array:
  """Chooses one token per row.

  Args:
    logits: [B, V] next-token logits (any float dtype; computed in float32).
    keys: [B] typed PRNG keys, one per row (unused when greedy).
    mode: static rule (greedy / top-k width / top-p on).
    temperature: scalar > 0 (ignored when greedy).
    top_p: scalar in (0, 1] (ignored unless mode.use_top_p).

  Returns:
    [B] int32 token ids.
  """
  logits = logits.astype(jnp.float32)
  if mode.greedy:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  scaled = logits / temperature
  vocab = scaled.shape[-1]
  candidate_ids = None
  if 0 < mode.top_k < vocab:
    scaled, candidate_ids = jax.lax.top_k(scaled, mode.top_k)
  elif mode.use_top_p:
    scaled, candidate_ids = sort_descending(scaled)
  if mode.use_top_p:
    scaled = jnp.where(nucleus_mask(scaled, top_p), scaled, -jnp.inf)
  choice = jax.vmap(lambda key, row: jax.random.categorical(key, row))(keys, scaled)
  if candidate_ids is None:
    return choice.astype(jnp.int32)
  return jnp.take_along_axis(candidate_ids, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)
