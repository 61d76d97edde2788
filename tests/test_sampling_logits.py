"""The pure token-choice rules: greedy, temperature, top-k, top-p (property tests + distribution checks)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from inoc_jax.errors import ConfigError
from inoc_jax.sampling.logits import NUCLEUS_WIDTH, nucleus_mask, sample_tokens, sort_descending
from inoc_jax.sampling.params import SamplingMode, SamplingParams


def allowed_set(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> set[int]:
  """Reference (numpy, float64): ids that temperature -> top-k -> top-p may emit."""
  order = np.argsort(-logits, kind="stable")
  if top_k:
    order = order[:top_k]
  scaled = logits[order].astype(np.float64) / temperature
  probs = np.exp(scaled - scaled.max())
  probs /= probs.sum()
  before = np.cumsum(probs) - probs
  return {int(i) for i, b in zip(order, before) if b < top_p}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), vocab=st.integers(2, 64), top_k=st.integers(0, 70),
       top_p=st.floats(0.05, 1.0), temperature=st.floats(0.1, 3.0))
def test_top_k_top_p_never_emit_a_token_outside_the_allowed_set(seed, vocab, top_k, top_p, temperature):
  rng = np.random.default_rng(seed)
  # distinct logits (a permutation of spread values) so the allowed set has no ties
  logits = (rng.permutation(vocab) * rng.uniform(0.05, 1.5)).astype(np.float32)
  rows = 64
  batch = jnp.asarray(np.tile(logits, (rows, 1)))
  keys = jax.random.split(jax.random.key(seed), rows)
  mode = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p).mode()
  tokens = np.asarray(sample_tokens(batch, keys, mode, jnp.float32(temperature), jnp.float32(top_p)))
  allowed = allowed_set(logits, temperature, top_k if top_k < vocab else 0, top_p if mode.use_top_p else 1.0)
  assert set(tokens.tolist()) <= allowed, (sorted(set(tokens.tolist()) - allowed), sorted(allowed))


def test_greedy_is_argmax_and_ignores_keys():
  logits = jnp.asarray([[0.1, 3.0, -1.0], [5.0, 4.9, 0.0]])
  mode = SamplingMode(greedy=True, top_k=0, use_top_p=False)
  keys = jax.random.split(jax.random.key(0), 2)
  np.testing.assert_array_equal(sample_tokens(logits, keys, mode, jnp.float32(1), jnp.float32(1)), [1, 0])


def _frequencies(logits, mode, temperature, top_p, draws=6000):
  batch = jnp.tile(jnp.asarray(logits, jnp.float32), (draws, 1))
  keys = jax.random.split(jax.random.key(7), draws)
  tokens = np.asarray(sample_tokens(batch, keys, mode, jnp.float32(temperature), jnp.float32(top_p)))
  return np.bincount(tokens, minlength=len(logits)) / draws


def test_draws_follow_the_renormalised_distribution():
  logits = np.log(np.asarray([0.4, 0.3, 0.2, 0.1]))
  # temperature 1, top-k 3: renormalised over the 3 best
  freq = _frequencies(logits, SamplingMode(False, 3, False), 1.0, 1.0)
  np.testing.assert_allclose(freq, [4 / 9, 3 / 9, 2 / 9, 0], atol=0.025)
  # top-p 0.65: 0.4 and 0.3 (mass before the 3rd is 0.7 >= 0.65)
  freq = _frequencies(logits, SamplingMode(False, 0, True), 1.0, 0.65)
  np.testing.assert_allclose(freq, [4 / 7, 3 / 7, 0, 0], atol=0.025)
  # temperature 0.5 squares the probabilities
  p = np.asarray([0.4, 0.3, 0.2, 0.1]) ** 2
  freq = _frequencies(logits, SamplingMode(False, 0, False), 0.5, 1.0)
  np.testing.assert_allclose(freq, p / p.sum(), atol=0.025)


def test_nucleus_keeps_the_best_token_even_for_tiny_p():
  sorted_logits, ids = sort_descending(jnp.asarray([[0.0, 9.0, 1.0]]))
  np.testing.assert_array_equal(ids, [[1, 2, 0]])
  np.testing.assert_array_equal(nucleus_mask(sorted_logits, jnp.float32(1e-6)), [[True, False, False]])


@pytest.mark.parametrize("bad, match", [
    (dict(temperature=-1.0), "temperature"), (dict(top_p=0.0), "top_p"), (dict(top_k=-2), "top_k"),
    (dict(max_new_tokens=0), "max_new_tokens"), (dict(num_samples=0), "num_samples"),
    (dict(stop_token_ids=tuple(range(17))), "stop token ids")])
def test_bad_sampling_parameters_are_one_clear_error(bad, match):
  with pytest.raises(ConfigError, match=match):
    SamplingParams(**bad)


def _wide_vocab_rows(rng, vocab):
  """Row 0: a flat distribution (its 0.9-nucleus is far wider than NUCLEUS_WIDTH); rows 1-3: peaked."""
  flat = rng.normal(0, 0.01, vocab)
  peaked = [rng.permutation(vocab) * 0.05 for _ in range(3)]
  return np.stack([flat, *peaked]).astype(np.float32)


def test_top_p_keeps_the_same_set_and_draws_past_the_first_candidates_on_a_large_vocabulary():
  vocab = 4 * NUCLEUS_WIDTH
  rows = _wide_vocab_rows(np.random.default_rng(3), vocab)
  draws = 1500
  mode = SamplingMode(greedy=False, top_k=0, use_top_p=True)
  for r, logits in enumerate(rows):
    batch = jnp.asarray(np.tile(logits, (draws, 1)))
    keys = jax.random.split(jax.random.key(r), draws)
    tokens = np.asarray(sample_tokens(batch, keys, mode, jnp.float32(0.7), jnp.float32(0.9)))
    allowed = allowed_set(logits, 0.7, 0, 0.9)
    assert set(tokens.tolist()) <= allowed
    head = set(np.argsort(-logits, kind="stable")[:NUCLEUS_WIDTH].tolist())
    if r == 0:  # the flat row's nucleus holds ~90% of the vocabulary: most draws lie past the head
      assert len(allowed) > 2 * NUCLEUS_WIDTH and np.mean([t not in head for t in tokens]) > 0.5
    else:
      assert allowed <= head


def test_a_rows_top_p_draw_does_not_depend_on_a_wide_row_beside_it():
  """A flat row sends the batch through the full sort; the peaked rows' draws must not change."""
  vocab = 4 * NUCLEUS_WIDTH
  rows = jnp.asarray(_wide_vocab_rows(np.random.default_rng(5), vocab))
  mode = SamplingMode(greedy=False, top_k=0, use_top_p=True)
  for seed in range(20):
    keys = jax.random.split(jax.random.key(seed), 4)
    together = sample_tokens(rows, keys, mode, jnp.float32(0.7), jnp.float32(0.9))
    peaked_only = sample_tokens(rows[1:], keys[1:], mode, jnp.float32(0.7), jnp.float32(0.9))
    np.testing.assert_array_equal(together[1:], peaked_only)
