"""A quantised frozen base for LoRA (`model.base_quant`: int8, nf4): the formats' numerics, the projection's
values and gradients against a dense kernel holding the dequantised weights, what the backward pass keeps, the
loader quantising pretrained weights leaf by leaf, and a run that trains, restores and resumes."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax._src.ad_checkpoint import saved_residuals

from inoc_jax import config_lib, trainer
from inoc_jax.aot.memory import tree_bytes
from inoc_jax.checkpoint.params import restore_params
from inoc_jax.errors import ConfigError
from inoc_jax.model import build
from inoc_jax.model.config import get_preset
from inoc_jax.model.layers import Projection
from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.merge import merge_lora
from inoc_jax.model.quantization import QuantConfig, dequantize, nf4_levels, quantize
from inoc_jax.sharding import rules
from inoc_jax.sharding.mesh import make_mesh
from inoc_jax.sharding.rules import path_to_str
from inoc_jax.training.optimizer import make_optimizer
from inoc_jax.training.train_state import (abstract_train_state, init_train_state, param_count,
                                           total_param_count)
from inoc_jax.weights.pretrained import open_pretrained
from tests.conftest import REPO
from tests.weight_fixtures import fixture_dir

INT8, NF4 = QuantConfig("int8"), QuantConfig("nf4", 16)

# The NF4 data type as published with QLoRA (bitsandbytes' table).
PUBLISHED_NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                 -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                 0.7229568362236023, 1.0]


def test_nf4_levels_are_qloras_normal_float():
  np.testing.assert_allclose(nf4_levels(), PUBLISHED_NF4, atol=3e-7)


def test_int8_codes_round_to_the_nearest_step_of_each_output_channel():
  w = jax.random.normal(jax.random.key(0), (32, 4, 8)) * jnp.arange(1, 33)[None, None, :8].repeat(4, 1)[0]
  codes, scale = quantize(w, INT8, 1)
  assert codes.dtype == jnp.int8 and codes.shape == w.shape and scale.shape == (1, 4, 8)
  np.testing.assert_allclose(scale, np.abs(np.asarray(w)).max(0, keepdims=True) / 127, rtol=1e-6)
  error = np.abs(np.asarray(dequantize(codes, scale, INT8, 1, jnp.float32)) - np.asarray(w))
  assert (error <= np.asarray(scale) / 2 + 1e-6).all()
  assert int(jnp.abs(codes).max()) == 127


@pytest.mark.parametrize("shape, n_in", [((64, 3, 5), 1), ((2, 32, 7), 2)])
def test_nf4_codes_are_each_blocks_nearest_level_packed_two_per_byte(shape, n_in):
  w = np.array(jax.random.normal(jax.random.key(1), shape))
  w[(0,) * n_in] = 0.0  # a block with a zero; and below one that is all zero
  codes, scale = quantize(jnp.asarray(w), NF4, n_in)
  k = n_in - 1
  assert codes.dtype == jnp.uint8 and codes.shape[k] == shape[k] // 2 and scale.shape[k] == shape[k] // 16
  # by hand: per block of 16 along the last input axis, the nearest level of w / absmax
  blocks = w.reshape(shape[:k] + (shape[k] // 16, 16) + shape[k + 1:])
  absmax = np.abs(blocks).max(axis=k + 1, keepdims=True)
  nearest = np.abs((blocks / absmax)[..., None] - nf4_levels()).argmin(-1).reshape(shape)
  np.testing.assert_allclose(np.squeeze(absmax, k + 1), scale, rtol=1e-6)
  unpacked = np.stack([np.asarray(codes) >> 4, np.asarray(codes) & 15], axis=k + 1).reshape(shape)
  np.testing.assert_array_equal(unpacked, nearest)
  expected = (nf4_levels()[nearest].reshape(blocks.shape) * absmax).reshape(shape)
  np.testing.assert_allclose(dequantize(codes, scale, NF4, n_in, jnp.float32), expected, rtol=1e-6)
  zero_codes, zero_scale = quantize(jnp.zeros(shape), NF4, n_in)
  assert not np.asarray(dequantize(zero_codes, zero_scale, NF4, n_in, jnp.float32)).any()


def _projection_pair(quant, lora, in_shape=(32,), out_shape=(4, 8)):
  """(quantised projection, dense projection holding the dequantised kernel and the same adapters)."""
  q = Projection(in_shape, out_shape, lora=lora, quant=quant, rngs=nnx.Rngs(0))
  dense = Projection(in_shape, out_shape, lora=lora, rngs=nnx.Rngs(0))
  dense.kernel.set_value(q.base_kernel())
  if lora is not None:
    q.lora_b.set_value(jax.random.normal(jax.random.key(2), q.lora_b.shape) * 0.1)
    dense.lora_a.set_value(q.lora_a[...])
    dense.lora_b.set_value(q.lora_b[...])
  return q, dense


@pytest.mark.parametrize("quant", [INT8, NF4], ids=["int8", "nf4"])
@pytest.mark.parametrize("lora", [LoraConfig(rank=4), None], ids=["lora", "no-adapter"])
def test_quantised_projection_matches_the_dequantised_dense_one_in_value_and_gradients(quant, lora):
  q, dense = _projection_pair(quant, lora)
  x = jax.random.normal(jax.random.key(3), (2, 5, 32))

  def loss(module, x):
    return jnp.sum(jnp.sin(module(x)))

  for filt in ([nnx.LoRAParam] if lora else []):
    got = nnx.grad(loss, argnums=nnx.DiffState(0, filt))(q, x)
    want = nnx.grad(loss, argnums=nnx.DiffState(0, filt))(dense, x)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(q(x), dense(x), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(jax.grad(lambda x: loss(q, x))(x), jax.grad(lambda x: loss(dense, x))(x),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("quant", [INT8, NF4], ids=["int8", "nf4"])
@pytest.mark.parametrize("lora", [LoraConfig(rank=4), None], ids=["lora", "no-adapter"])
def test_backward_pass_keeps_the_stored_codes_not_a_dense_kernel(quant, lora):
  q, _ = _projection_pair(quant, lora, in_shape=(64,), out_shape=(48,))
  graphdef, adapters, frozen = nnx.split(q, nnx.LoRAParam, ...)

  def loss(adapters, x):  # differentiated in the adapters and the input
    return jnp.sum(jnp.sin(nnx.merge(graphdef, adapters, frozen)(x)))

  saved = [aval for aval, _ in saved_residuals(loss, adapters, jnp.ones((3, 64)))]
  assert any(a.dtype in (jnp.int8, jnp.uint8) for a in saved), saved
  assert not [a for a in saved if a.shape == (64, 48) and jnp.issubdtype(a.dtype, jnp.floating)], saved


def _config(*overrides):
  return config_lib.load_config(os.path.join(REPO, "configs", "organism.py"), [
      "lora.enabled=True", "lora.rank=4", "lora.alpha=8", "train.num_steps=4", "optim.lr=1e-2",
      "data.num_train_examples=64", "data.global_batch_size=8", "eval.at_end=False",
      "model.quant_block_size=16", *overrides])


def _abstract_state(config):
  arch = get_preset(config.model.preset)
  return abstract_train_state(build.training_spec(config, arch), make_optimizer(config.optim, 10)[0],
                              make_mesh({"data": 1}))[1]


def test_frozen_bytes_per_block_weight_and_parameter_counts():
  dense, int8, nf4 = (_abstract_state(_config(f"model.base_quant={kind}")) for kind in ("none", "int8", "nf4"))
  arch = get_preset("organism")
  kernels = lambda s: {k: v for k, v in jax.tree_util.tree_leaves_with_path(s.frozen) if "layers" in str(k)
                       and "norm" not in str(k)}
  block_weights = param_count(list(kernels(dense).values()))
  assert tree_bytes(list(kernels(dense).values())) == 4 * block_weights
  # int8: one byte + a float32 scale per output channel; nf4: half a byte + a float32 absmax per 16 weights
  assert tree_bytes(list(kernels(nf4).values())) == block_weights * (0.5 + 4 / 16)
  assert block_weights < tree_bytes(list(kernels(int8).values())) < 1.1 * block_weights
  for state in (dense, int8, nf4):
    assert total_param_count(state, arch) == param_count(dense.params) + param_count(dense.frozen)
    assert tree_bytes(state.params) == tree_bytes(dense.params)


def test_codes_and_scales_follow_their_kernels_sharding_rule():
  frozen = _abstract_state(_config("model.base_quant=nf4")).frozen
  paths = [path_to_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(frozen)[0]]
  scales = [p for p in paths if p.endswith("/kernel_scale")]
  assert len(scales) == 7 * get_preset("organism").num_layers
  for path in scales:
    kernel = path.removesuffix("_scale")
    assert kernel in paths and rules.spec_for(path) == rules.spec_for(kernel) != rules.spec_for("no/such/leaf")


def test_pretrained_weights_are_quantised_leaf_by_leaf_like_the_dense_load():
  pretrained = open_pretrained(fixture_dir("llama"))
  arch, mesh, quant = pretrained.model_config, make_mesh({"data": 1}), QuantConfig("nf4", 8)
  spec = build.saved_spec(arch, LoraConfig(rank=4), quant=quant)
  loaded = pretrained.load(spec, mesh)
  dense = pretrained.load(spec.dense(), mesh)
  for layer in range(arch.num_layers):
    for module, name, n_in in (("attn", "o_proj", 2), ("mlp", "down_proj", 1), ("attn", "q_proj", 1)):
      stored, kernel = loaded["layers"][layer][module][name], dense["layers"][layer][module][name]["kernel"]
      codes, scale = quantize(kernel[...], quant, n_in)
      np.testing.assert_array_equal(stored["kernel"][...], codes)
      np.testing.assert_array_equal(stored["kernel_scale"][...], scale)
  np.testing.assert_array_equal(loaded["embedder"]["embedding"][...], dense["embedder"]["embedding"][...])

  graphdef, state, _ = init_train_state(spec, optax.sgd(0.1), mesh, 0, pretrained=loaded)
  merged = merge_lora(graphdef, state.params, state.frozen)  # adapters start at B = 0: the dequantised base
  kernel = merged["layers"][0]["attn"]["o_proj"]["kernel"]
  assert isinstance(kernel, nnx.Param) and kernel.dtype == jnp.float32
  np.testing.assert_allclose(kernel[...], dequantize(*quantize(dense["layers"][0]["attn"]["o_proj"]["kernel"][...],
                                                                quant, 2), quant, 2, jnp.float32))
  assert set(jax.tree_util.tree_structure(merged).node_data()[1]) == set(jax.tree_util.tree_structure(
      dense).node_data()[1])


def test_quantised_bases_train_close_to_float32_and_nf4_restores_and_resumes(tmp_path):
  fp32 = trainer.train_and_evaluate(_config(), str(tmp_path / "dense"))
  for kind in ("int8", "nf4"):
    run = trainer.train_and_evaluate(_config(f"model.base_quant={kind}"), str(tmp_path / kind))
    assert run.final_loss < run.first_loss
    # the same data and adapters; only the random-init base is rounded to int8 / NF4
    assert run.first_loss == pytest.approx(fp32.first_loss, rel=2e-2)
    assert run.final_loss == pytest.approx(fp32.final_loss, rel=5e-2)
  meta = json.load(open(tmp_path / kind / "checkpoints" / "4" / "meta" / "metadata"))
  assert meta["base_quant"] == {"kind": kind, "block_size": 16}

  restored = restore_params(str(tmp_path / kind))  # the quantised base rebuilt from the seed and checksummed
  kernel = restored.params["layers"][0]["mlp"]["down_proj"]["kernel"]
  assert kernel.dtype == jnp.float32 and "kernel_scale" not in restored.params["layers"][0]["mlp"]["down_proj"]
  resumed = trainer.train_and_evaluate(_config(f"model.base_quant={kind}", "train.num_steps=6"),
                                       str(tmp_path / kind))
  assert resumed.steps == 6 and np.isfinite(resumed.final_loss)


def test_bad_quantisation_settings_are_one_sentence_errors():
  with pytest.raises(ConfigError, match="model.base_quant must be none, int8 or nf4"):
    config_lib.validate(_config("model.base_quant=int3"), 1)
  with pytest.raises(ConfigError, match="lora.enabled=False"):
    config_lib.validate(_config("lora.enabled=False", "model.base_quant=nf4"), 1)
  with pytest.raises(ConfigError, match="quant_block_size must be an even integer"):
    config_lib.validate(_config("model.quant_block_size=7"), 1)
  with pytest.raises(ConfigError, match=r"do not tile the model's head_dim \(16\)"):
    build.quant_config(_config("model.base_quant=nf4", "model.quant_block_size=32"), get_preset("organism"))
