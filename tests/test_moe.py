"""Mixture-of-experts blocks (Qwen3-MoE, model/moe.py): routing and the sparse ragged-dot computation against a
per-expert loop written like transformers' Qwen3MoeExperts, LoRA on the experts (values, gradients, merge), the
per-expert checkpoint tensors stacked and unstacked, and full fine-tuning through the training CLI. Logit and
greedy parity with transformers: test_weight_parity.py / test_sampler_parity.py (qwen3_moe fixtures)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from inoc_jax import config_lib, trainer
from inoc_jax.errors import CheckpointError, ConfigError
from inoc_jax.model.config import ModelConfig, count_params, get_preset
from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.merge import merge_lora
from inoc_jax.model.moe import MoEMLP
from inoc_jax.model.transformer import Transformer
from inoc_jax.training.train_state import param_count
from inoc_jax.weights.expert_stacking import ExpertStacking, per_expert
from tests.conftest import REPO

ARCH = get_preset("tiny-qwen3moe")


def _loop_reference(mlp: MoEMLP, x: jax.Array, normalise: bool) -> jax.Array:
  """transformers' way: for each expert, gather its tokens, run its MLP, scale by the routing weight, add back."""
  tokens = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
  logits = tokens @ np.asarray(mlp.router.kernel[...], np.float64)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  chosen = np.argsort(-probs, axis=-1)[:, :mlp.k]
  weights = np.take_along_axis(probs, chosen, -1)
  if normalise:
    weights /= weights.sum(-1, keepdims=True)
  dense = {name: np.asarray(mlp.experts[name].merged_kernel(), np.float64) for name in mlp.experts}
  out = np.zeros_like(tokens)
  for e in range(mlp.num_experts):
    token_idx, slot = np.nonzero(chosen == e)
    h = tokens[token_idx]
    gate = h @ dense["gate_proj"][e]
    hidden = gate / (1 + np.exp(-gate)) * (h @ dense["up_proj"][e])
    out[token_idx] += (hidden @ dense["down_proj"][e]) * weights[token_idx, slot][:, None]
  return out.reshape(x.shape)


def _mlp(lora=None, normalise=True):
  mlp = MoEMLP(ARCH.replace(norm_top_k=normalise), lora=lora, dtype=jnp.float32, param_dtype=jnp.float32,
               rngs=nnx.Rngs(0))
  if lora is not None:
    for i, name in enumerate(mlp.experts):
      b = mlp.experts[name].lora_b
      b.set_value(jax.random.normal(jax.random.key(i), b.shape) * 0.3)
  return mlp


@pytest.mark.parametrize("normalise", [True, False])
@pytest.mark.parametrize("lora", [None, LoraConfig(rank=4)], ids=["base", "lora"])
def test_sparse_routing_matches_the_per_expert_loop(lora, normalise):
  mlp = _mlp(lora, normalise)
  x = jax.random.normal(jax.random.key(5), (3, 7, ARCH.d_model))
  np.testing.assert_allclose(mlp(x), _loop_reference(mlp, x, normalise), atol=2e-5, rtol=1e-4)


def test_expert_adapter_gradients_match_a_dense_mixture():
  """The same function written densely (every expert on every token, weights zero off the top-k)."""
  mlp = _mlp(LoraConfig(rank=4))
  x = jax.random.normal(jax.random.key(6), (2, 5, ARCH.d_model))
  graphdef, adapters, rest = nnx.split(mlp, nnx.LoRAParam, ...)

  def sparse(adapters):
    return jnp.sum(jnp.sin(nnx.merge(graphdef, adapters, rest)(x)))

  def dense(adapters):
    m = nnx.merge(graphdef, adapters, rest)
    tokens = x.reshape(-1, ARCH.d_model)
    probs = jax.nn.softmax(m.router(tokens), axis=-1)
    top = jax.lax.top_k(probs, m.k)[0][:, -1:]
    weights = jnp.where(probs >= top, probs, 0.0)
    weights = weights / weights.sum(-1, keepdims=True)
    w = {n: m.experts[n].kernel[...] for n in m.experts}
    lora = {n: (m.experts[n].lora_a[...], m.experts[n].lora_b[...]) for n in m.experts}
    scale = m.experts["gate_proj"].lora.scale

    def project(name, h):  # h [E, N, in]
      a, b = lora[name]
      return jnp.einsum("eni,eio->eno", h, w[name]) + scale * jnp.einsum("eni,eir,ero->eno", h, a, b)

    h = jnp.broadcast_to(tokens, (m.num_experts,) + tokens.shape)
    hidden = jax.nn.silu(project("gate_proj", h)) * project("up_proj", h)
    out = jnp.einsum("ne,end->nd", weights, project("down_proj", hidden))
    return jnp.sum(jnp.sin(out.reshape(x.shape)))

  assert sparse(adapters) == pytest.approx(float(dense(adapters)), rel=1e-5)
  got, want = jax.grad(sparse)(adapters), jax.grad(dense)(adapters)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):  # float32 sums of terms up to ~100
    np.testing.assert_allclose(g, w, atol=1e-4 * float(jnp.abs(w).max()), rtol=1e-3)
  assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(got))


def test_merged_experts_give_the_adapted_model_and_parameter_counts_add_up():
  tokens = np.random.default_rng(0).integers(1, ARCH.vocab_size, (2, 12)).astype(np.int32)
  positions = np.broadcast_to(np.arange(12), (2, 12))
  segments = np.ones((2, 12), np.int32)
  model = Transformer(ARCH, lora=LoraConfig(rank=4), rngs=nnx.Rngs(0))
  for _, module in nnx.iter_modules(model):
    if hasattr(module, "lora_b") and module.lora is not None:
      module.lora_b.set_value(jax.random.normal(jax.random.key(1), module.lora_b.shape) * 0.1)
  graphdef, adapters, rest = nnx.split(model, nnx.LoRAParam, ...)
  plain = Transformer(ARCH, rngs=nnx.Rngs(1))
  nnx.update(plain, merge_lora(graphdef, adapters, rest))
  np.testing.assert_allclose(plain(tokens, positions, segments)[0], model(tokens, positions, segments)[0],
                             atol=1e-4, rtol=1e-4)
  assert param_count(nnx.state(plain, nnx.Param)) == count_params(ARCH)
  attention = 4 * ((64 + 64) + 2 * (64 + 32) + (64 + 64))  # r (in + out): q, k, v, o
  experts = 3 * 4 * 4 * (64 + 32)  # gate, up, down: 4 experts of r (in + out)
  assert param_count(adapters) == 2 * (attention + experts)


def test_a_bad_mixture_is_a_one_sentence_error():
  with pytest.raises(ConfigError, match="experts_per_token <= num_experts"):
    ModelConfig(family="qwen3_moe", num_experts=4, experts_per_token=5, expert_mlp_dim=8)


def _config(*overrides):
  return config_lib.load_config(os.path.join(REPO, "configs", "organism.py"), [
      "model.preset=tiny-qwen3moe", "train.num_steps=4", "optim.lr=1e-2", "data.num_train_examples=64",
      "data.global_batch_size=8", "eval.at_end=False", *overrides])


def test_tiny_moe_trains_every_weight_through_the_cli(tmp_path):
  """Full fine-tuning (router and experts trained); LoRA: tests/test_model_families.py."""
  summary = trainer.train_and_evaluate(_config(), str(tmp_path))
  assert summary.final_loss < summary.first_loss and np.isfinite(summary.final_loss)


def test_per_expert_tensors_read_as_one_stacked_tensor_and_written_back():
  class Source:
    tensors = {f"m.experts.{e}.up_proj.weight": np.full((3, 2), e, np.float32) for e in range(4)}
    tensors["m.gate.weight"] = np.ones((4, 2), np.float32)

    def names(self):
      return list(self.tensors)

    def shape(self, name):
      return self.tensors[name].shape

    def read(self, name, slices):
      return self.tensors[name][tuple(slices)]

  stacked = ExpertStacking(Source())
  assert sorted(stacked.names()) == ["m.experts.up_proj.weight", "m.gate.weight"]
  assert stacked.shape("m.experts.up_proj.weight") == (4, 3, 2)
  block = stacked.read("m.experts.up_proj.weight", (slice(1, 3), slice(0, 2), slice(None)))
  assert block.shape == (2, 2, 2)
  np.testing.assert_array_equal(block[:, 0, 0], [1, 2])
  written = dict(per_expert("m.experts.up_proj.weight", stacked.read("m.experts.up_proj.weight", ())))
  assert written.keys() == {f"m.experts.{e}.up_proj.weight" for e in range(4)}
  del Source.tensors["m.experts.2.up_proj.weight"]
  with pytest.raises(CheckpointError, match="no expert 2 for m.experts.up_proj.weight"):
    ExpertStacking(Source())
