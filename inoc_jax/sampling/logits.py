"""Pure functions from next-token logits to tokens: greedy, temperature, top-k, top-p.

The order is the one HF `generate` and vLLM use: divide by the temperature,
keep the top-k candidates, then keep the smallest prefix of them (by
probability) whose mass reaches top-p, then draw. Every row has its own key,
so a row's draw does not depend on the other rows of the batch.

Top-p needs the candidates in probability order. Sorting a [B, V] row set is
the slow part on CPU (~1.3 s for 64 x 49,152 on the 2-core machine, against
~20 ms for `lax.top_k` of 256), so top-p first looks at the NUCLEUS_WIDTH most
likely tokens and sorts the whole vocabulary only when some row's nucleus is
wider than that. The kept set is the same either way, and so is the draw: it
inverts the kept prefix's cumulative mass with one uniform number per row, and
that prefix is identical in both orders.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from inoc_jax.sampling.params import SamplingMode

NUCLEUS_WIDTH = 256


def sort_descending(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """([B, V] logits sorted high to low, [B, V] int32 token ids in that order; ties: lower id first)."""
  ids = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
  negated, ids = jax.lax.sort((-logits, ids), dimension=logits.ndim - 1, num_keys=1, is_stable=True)
  return -negated, ids


def nucleus_mask(sorted_logits: jax.Array, top_p: jax.Array, log_total: jax.Array | None = None) -> jax.Array:
  """Which candidates top-p keeps, for logits sorted high to low ([B, n] bool).

  A candidate is kept when the probability mass strictly before it is below
  top_p, so the most likely candidate is always kept. `log_total` [B] is the
  log of the whole distribution's mass when the candidates are only its head
  (default: the candidates are the whole distribution).
  """
  sorted_logits = sorted_logits.astype(jnp.float32)
  if log_total is None:
    log_total = jax.nn.logsumexp(sorted_logits, axis=-1)
  probs = jnp.exp(sorted_logits - log_total[:, None])
  mass_before = jnp.cumsum(probs, axis=-1) - probs
  return mass_before < top_p


def _draw_kept(sorted_logits: jax.Array, ids: jax.Array, keep: jax.Array, keys: jax.Array) -> jax.Array:
  """Draws one kept candidate per row in proportion to its probability, by inverting the kept prefix's CDF.

  Args:
    sorted_logits, ids: [B, n] candidates high to low and their token ids.
    keep: [B, n] bool, a non-empty prefix of each row.
    keys: [B] typed PRNG keys.
  """
  weights = jnp.where(keep, jnp.exp(sorted_logits - sorted_logits[:, :1]), 0.0)
  cdf = jnp.cumsum(weights, axis=-1)
  uniform = jax.vmap(jax.random.uniform)(keys)
  target = uniform * cdf[:, -1]
  index = jnp.minimum(jnp.sum(cdf <= target[:, None], axis=-1), jnp.sum(keep, axis=-1) - 1)
  return jnp.take_along_axis(ids, index[:, None], axis=-1)[:, 0]


def _top_p_tokens(scaled: jax.Array, keys: jax.Array, top_k: int, top_p: jax.Array,
                  live: jax.Array | None) -> jax.Array:
  """Top-p (after top-k when 0 < top_k < V) over [B, V] temperature-scaled logits -> [B] token ids.

  Only `live` rows ([B] bool; None = all) may send the batch to the full sort: a
  finished or padding row's token is discarded, and its logits are often flat.
  """
  def draw(ordered, ids, log_total=None):
    return _draw_kept(ordered, ids, nucleus_mask(ordered, top_p, log_total), keys)

  vocab = scaled.shape[-1]
  if 0 < top_k < vocab:  # HF's order: top-p over the k best, renormalised
    return draw(*jax.lax.top_k(scaled, top_k))
  if vocab <= NUCLEUS_WIDTH:
    return draw(*sort_descending(scaled))
  log_total = jax.nn.logsumexp(scaled, axis=-1)
  head, head_ids = jax.lax.top_k(scaled, NUCLEUS_WIDTH)
  # a row whose NUCLEUS_WIDTH best tokens hold less than top_p may keep a token past them
  covered = jnp.sum(jnp.exp(head - log_total[:, None]), axis=-1) >= top_p
  if live is not None:
    covered |= ~live
  return jax.lax.cond(jnp.all(covered), lambda: draw(head, head_ids, log_total),
                      lambda: draw(*sort_descending(scaled), log_total))


def sample_tokens(logits: jax.Array, keys: jax.Array, mode: SamplingMode, temperature: jax.Array,
                  top_p: jax.Array, live: jax.Array | None = None) -> jax.Array:
  """Chooses one token per row.

  Args:
    logits: [B, V] next-token logits (any float dtype; computed in float32).
    keys: [B] typed PRNG keys, one per row (unused when greedy).
    mode: static rule (greedy / top-k width / top-p on).
    temperature: scalar > 0 (ignored when greedy).
    top_p: scalar in (0, 1] (ignored unless mode.use_top_p).
    live: [B] bool, rows whose token will be used (None = all); the others get
      some token, cheaply.

  Returns:
    [B] int32 token ids.
  """
  logits = logits.astype(jnp.float32)
  if mode.greedy:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  scaled = logits / temperature
  if mode.use_top_p:
    return _top_p_tokens(scaled, keys, mode.top_k, top_p, live).astype(jnp.int32)
  candidate_ids = None
  if 0 < mode.top_k < scaled.shape[-1]:
    scaled, candidate_ids = jax.lax.top_k(scaled, mode.top_k)
  choice = jax.vmap(jax.random.categorical)(keys, scaled)
  if candidate_ids is None:
    return choice.astype(jnp.int32)
  return jnp.take_along_axis(candidate_ids, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)
