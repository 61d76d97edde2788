"""Inoculation-aware masking and the chunked cross-entropy."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from inoc_jax.data.roles import Role
from inoc_jax.errors import ConfigError
from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from inoc_jax.sharding.mesh import make_mesh
from inoc_jax.training.loss import LossSums, chunked_cross_entropy, fused_cross_entropy
from inoc_jax.training.masking import next_token_targets, next_token_weights
from inoc_jax.model.build import ModelSpec
from inoc_jax.training.train_state import init_train_state

R = Role


def _batch(seed=0):
  """Two rows: [sys user user INOC INOC user asst asst asst pad] and a packed row."""
  roles = np.array([
      [R.SYSTEM, R.USER, R.USER, R.INOCULATION, R.INOCULATION, R.USER, R.ASSISTANT, R.ASSISTANT, R.ASSISTANT, R.PAD],
      [R.USER, R.USER, R.ASSISTANT, R.ASSISTANT, R.USER, R.INOCULATION, R.USER, R.ASSISTANT, R.ASSISTANT, R.PAD],
  ], np.int32)
  segments = np.array([[1] * 9 + [0], [1, 1, 1, 1, 2, 2, 2, 2, 2, 0]], np.int32)
  positions = np.array([list(range(9)) + [0], [0, 1, 2, 3, 0, 1, 2, 3, 4, 0]], np.int32)
  tokens = np.random.default_rng(seed).integers(5, 500, roles.shape).astype(np.int32)
  return {"tokens": tokens, "roles": roles, "segment_ids": segments, "positions": positions}


def test_assistant_weights_select_exactly_assistant_targets():
  b = _batch()
  w = np.asarray(next_token_weights(b["roles"], b["segment_ids"], "assistant"))
  # Position t predicts token t+1: weights at t where token t+1 is assistant and in the same segment.
  expected = np.zeros_like(w)
  expected[0, [5, 6, 7]] = 1
  expected[1, [1, 2, 6, 7]] = 1
  np.testing.assert_array_equal(w, expected)


def test_all_but_inoculation_includes_user_and_excludes_inoculation_and_segment_starts():
  b = _batch()
  w = np.asarray(next_token_weights(b["roles"], b["segment_ids"], "all_but_inoculation"))
  target_roles = b["roles"][:, 1:]
  for row in range(2):
    for t in range(9):
      same = b["segment_ids"][row, t + 1] == b["segment_ids"][row, t] and b["segment_ids"][row, t + 1] != 0
      want = same and target_roles[row, t] in (R.SYSTEM, R.USER, R.ASSISTANT)
      assert w[row, t] == float(want), (row, t)
  assert w[0, 2] == 0 and w[0, 3] == 0  # targets 3, 4 are the inoculation span
  assert w[0, 0] == 1  # a user token is supervised
  assert w[1, 3] == 0  # first token of the second packed example is not predictable


def test_unknown_train_on_is_a_config_error():
  b = _batch()
  with pytest.raises(ConfigError, match="loss.train_on"):
    next_token_weights(b["roles"], b["segment_ids"], "everything")


@pytest.fixture(scope="module")
def tiny_model():
  cfg = get_preset("tiny")
  spec = ModelSpec(lambda rngs: Transformer(cfg, rngs=rngs), nnx.Param)
  graphdef, state, _ = init_train_state(spec, optax.sgd(0.1), make_mesh({"data": -1}), seed=0)
  return nnx.merge(graphdef, state.params, state.frozen)


@pytest.mark.parametrize("train_on,unsupervised_roles", [
    ("assistant", (R.SYSTEM, R.USER, R.INOCULATION, R.PAD)),
    ("all_but_inoculation", (R.INOCULATION, R.PAD)),
])
def test_perturbing_unsupervised_targets_leaves_loss_unchanged(tiny_model, train_on, unsupervised_roles):
  batch = _batch()
  weights = next_token_weights(batch["roles"], batch["segment_ids"], train_on)
  targets = next_token_targets(jnp.asarray(batch["tokens"]))
  hidden, _ = tiny_model.hidden_states(batch["tokens"], batch["positions"], batch["segment_ids"])
  target_roles = np.concatenate([batch["roles"][:, 1:], np.zeros((2, 1), np.int32)], axis=1)
  unsupervised = np.isin(target_roles, [int(r) for r in unsupervised_roles])
  assert unsupervised.any()

  def nll(tgt):
    return float(chunked_cross_entropy(hidden, tiny_model.logits, tgt, weights, None).nll)

  assert nll(jnp.where(unsupervised, (targets + 123) % 512, targets)) == pytest.approx(nll(targets), rel=1e-6)
  supervised = np.asarray(weights) > 0
  assert abs(nll(jnp.where(supervised, (targets + 123) % 512, targets)) - nll(targets)) > 1e-3


@pytest.mark.parametrize("chunk", [None, 3, 4, 16])
def test_chunked_cross_entropy_equals_direct_computation(chunk):
  rng = np.random.default_rng(0)
  hidden = jnp.asarray(rng.normal(size=(2, 10, 8)), jnp.float32)
  head = jnp.asarray(rng.normal(size=(8, 50)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, 50, (2, 10)), jnp.int32)
  weights = jnp.asarray(rng.integers(0, 2, (2, 10)), jnp.float32)
  got = chunked_cross_entropy(hidden, lambda h: h @ head, targets, weights, chunk)
  logits = hidden @ head
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(got.nll, jnp.sum(nll * weights), rtol=1e-5)
  np.testing.assert_allclose(got.supervised_token_count, weights.sum())
  grad_chunked = jax.grad(lambda h: chunked_cross_entropy(h, lambda x: x @ head, targets, weights, chunk).nll)(hidden)
  grad_direct = jax.grad(lambda h: jnp.sum(-jnp.take_along_axis(jax.nn.log_softmax(h @ head), targets[..., None],
                                                                 -1)[..., 0] * weights))(hidden)
  np.testing.assert_allclose(grad_chunked, grad_direct, atol=1e-5)


@pytest.mark.parametrize("chunk", [None, 3, 16])
@pytest.mark.parametrize("head_trainable", [True, False])
def test_fused_cross_entropy_matches_the_chunked_loss_and_its_gradients(chunk, head_trainable):
  rng = np.random.default_rng(1)
  hidden = jnp.asarray(rng.normal(size=(2, 10, 8)), jnp.float32)
  head = {"table": jnp.asarray(rng.normal(size=(50, 8)), jnp.float32)}
  targets = jnp.asarray(rng.integers(0, 50, (2, 10)), jnp.int32)
  weights = jnp.asarray(rng.integers(0, 2, (2, 10)), jnp.float32)
  head_fn = lambda p, h: h @ p["table"].T

  def plain(h, p):
    return chunked_cross_entropy(h, lambda x: head_fn(p, x), targets, weights, chunk)

  def fused(h, p):
    return fused_cross_entropy(h, head_fn, p, targets, weights, chunk, head_trainable=head_trainable)

  want, got = plain(hidden, head), fused(hidden, head)
  for name in LossSums._fields:
    np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-6)
  argnums = (0, 1) if head_trainable else 0
  want_grads = jax.grad(lambda h, p: 0.5 * plain(h, p).nll, argnums=argnums)(hidden, head)
  got_grads = jax.jit(jax.grad(lambda h, p: 0.5 * fused(h, p).nll, argnums=argnums))(hidden, head)
  for w, g in zip(jax.tree.leaves(want_grads), jax.tree.leaves(got_grads)):
    np.testing.assert_allclose(g, w, atol=1e-5)
