"""Next-token cross-entropy over chunks of the sequence.

Logits are computed chunk by chunk inside a rematerialised scan, so neither the
forward nor the backward pass holds a full [batch, seq, vocab] float32 array:
for a 256k vocabulary (Gemma) that array would dwarf the activations.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class LossSums(NamedTuple):
  """Sums over supervised tokens; divide by the global supervised-token count."""

  nll: jax.Array
  correct: jax.Array
  supervised_token_count: jax.Array


def chunked_cross_entropy(hidden: jax.Array, logits_fn: Callable[[jax.Array], jax.Array],
                          targets: jax.Array, weights: jax.Array, chunk_size: int | None) -> LossSums:
  """Weighted next-token NLL and accuracy sums.

  Args:
    hidden: [batch, seq, d_model] final hidden states at the input positions.
    logits_fn: hidden chunk [batch, chunk, d_model] -> logits [batch, chunk, vocab].
    targets: [batch, seq] int token ids to predict.
    weights: [batch, seq] float loss weights (0 = unsupervised).
    chunk_size: tokens per chunk along seq; None or >= seq computes in one piece.
  """
  batch, seq, d_model = hidden.shape
  chunk = seq if not chunk_size or chunk_size >= seq else chunk_size
  num_chunks = -(-seq // chunk)
  pad = num_chunks * chunk - seq
  if pad:
    hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
    targets = jnp.pad(targets, ((0, 0), (0, pad)))
    weights = jnp.pad(weights, ((0, 0), (0, pad)))

  def split(x):
    return jnp.moveaxis(x.reshape((batch, num_chunks, chunk) + x.shape[2:]), 1, 0)

  @jax.checkpoint
  def chunk_sums(h, tgt, w):
    logits = logits_fn(h).astype(jnp.float32)
    log_norm = jax.nn.logsumexp(logits, axis=-1)
    # Masked reductions instead of take_along_axis / argmax: both stay local when the vocabulary
    # is sharded (a gather on a sharded dimension would all-gather the logits).
    vocab_ids = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
    target_logit = jnp.sum(jnp.where(vocab_ids == tgt[..., None], logits, 0.0), axis=-1)
    first_max = jnp.min(jnp.where(logits == jnp.max(logits, axis=-1, keepdims=True), vocab_ids, logits.shape[-1]),
                        axis=-1)
    nll = jnp.sum((log_norm - target_logit) * w)
    correct = jnp.sum((first_max == tgt) * w)
    return nll, correct

  if num_chunks == 1:
    nll, correct = chunk_sums(hidden, targets, weights)
  else:
    def body(carry, xs):
      nll, correct = chunk_sums(*xs)
      return (carry[0] + nll, carry[1] + correct), None

    zero = jnp.zeros((), jnp.float32)
    (nll, correct), _ = jax.lax.scan(body, (zero, zero), (split(hidden), split(targets), split(weights)))
  return LossSums(nll, correct, jnp.sum(weights))
