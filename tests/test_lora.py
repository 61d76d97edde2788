"""LoRA / rsLoRA: trainable counts, frozen base, adapter-only optimizer state, merging, scaling, dropout."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from inoc_jax.model.config import get_preset
from inoc_jax.model.layers import Projection
from inoc_jax.model.lora import ALL_TARGETS, LoraConfig, count_lora_params
from inoc_jax.model.merge import merge_lora
from inoc_jax.model.transformer import Transformer
from inoc_jax.sharding.mesh import make_mesh
from inoc_jax.sharding.rules import path_to_str
from inoc_jax.model import build
from inoc_jax.model.build import ModelSpec
from inoc_jax.training.train_state import init_train_state, param_count
from inoc_jax.training.train_step import StepOptions, TrainStep
from inoc_jax.weights.pretrained import open_pretrained
from tests.weight_fixtures import fixture_dir


def _batch(vocab, rows=4, seq=16, seed=0):
  rng = np.random.default_rng(seed)
  roles = np.full((rows, seq), 2, np.int32)
  roles[:, seq // 2:] = 4
  return {"tokens": rng.integers(3, vocab, (rows, seq)).astype(np.int32), "roles": roles,
          "segment_ids": np.ones((rows, seq), np.int32),
          "positions": np.tile(np.arange(seq, dtype=np.int32), (rows, 1))}


def _lora_state(arch, lora, tx, pretrained=None):
  spec = ModelSpec(lambda rngs: Transformer(arch, lora=lora, rngs=rngs), nnx.LoRAParam)
  mesh = make_mesh({"data": -1})
  base = pretrained.load(spec, mesh) if pretrained else None
  graphdef, state, shardings = init_train_state(spec, tx, mesh, seed=0, pretrained=base)
  return graphdef, state, shardings, mesh


@pytest.mark.parametrize("targets", [ALL_TARGETS, ("q", "v"), ("o", "down")])
def test_r8_trainable_count_matches_formula(targets):
  arch = get_preset("smollm2-135m")
  lora = LoraConfig(rank=8, alpha=16, targets=targets)
  spec = ModelSpec(lambda rngs: Transformer(arch, lora=lora, rngs=rngs), nnx.LoRAParam)
  _, params, _ = spec.abstract()
  assert param_count(params) == count_lora_params(arch, lora)
  if targets == ALL_TARGETS:
    assert param_count(params) == 8 * 30 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))  # 2,442,240


def test_training_step_moves_adapters_only_and_opt_state_holds_only_adapters():
  pretrained = open_pretrained(fixture_dir("llama"))
  arch = pretrained.model_config
  tx = optax.adamw(1e-2)
  graphdef, state, shardings, mesh = _lora_state(arch, LoraConfig(rank=8, alpha=16), tx, pretrained)
  frozen_before = jax.device_get(state.frozen)
  params_before = jax.device_get(state.params)
  opt_paths = [path_to_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(state.opt_state)[0]]
  array_paths = [p for p in opt_paths if not p.endswith("count")]
  assert array_paths and all(p.endswith(("lora_a", "lora_b")) for p in array_paths)
  assert param_count(state.opt_state) - 1 == 2 * param_count(state.params)  # Adam mu + nu (+ step count)
  step = TrainStep(graphdef, tx, lambda s: 1e-2, StepOptions(), mesh, shardings)
  state, _ = step(state, _batch(arch.vocab_size))
  for before, after in zip(jax.tree.leaves(frozen_before), jax.tree.leaves(jax.device_get(state.frozen))):
    np.testing.assert_array_equal(before, after)
  moved = [not np.array_equal(b, a) for b, a in zip(jax.tree.leaves(params_before),
                                                    jax.tree.leaves(jax.device_get(state.params)))]
  assert all(moved)  # every adapter matrix received a gradient (B from 0, then A through B)


def test_the_train_state_draws_every_adapter_a_from_its_kaiming_bound_once_per_shape():
  """init_train_state re-draws A as one array per shape (redraw_adapters): each A is within +-1/sqrt(fan_in),
  spread over it, different from every other A, B is zero, and the same seed gives the same A."""
  arch = get_preset("tiny")
  tx = optax.adamw(1e-3)
  _, state, _, _ = _lora_state(arch, LoraConfig(rank=4), tx)
  _, again, _, _ = _lora_state(arch, LoraConfig(rank=4), tx)
  flat = {path_to_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(state.params)[0]}
  a_leaves = {p: v for p, v in flat.items() if p.endswith("lora_a")}
  assert len(a_leaves) == 2 * 7
  for path, a in a_leaves.items():
    bound = 1 / np.sqrt(np.prod(a.shape[:-1]))
    assert np.abs(a).max() <= bound and np.abs(a).max() > 0.9 * bound, path
    assert abs(a.mean()) < 0.1 * bound and 0.5 < a.std() / (bound / np.sqrt(3)) < 1.5, path
  firsts = [tuple(a.ravel()[:8]) for a in a_leaves.values()]
  assert len(set(firsts)) == len(firsts)  # no two adapters share a draw
  assert all(not v.any() for p, v in flat.items() if p.endswith("lora_b"))
  for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(again.params)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("rslora", [True, False])
def test_merged_model_gives_the_unmerged_logits(rslora):
  arch = get_preset("tiny-qwen2")
  lora = LoraConfig(rank=4, alpha=8, rslora=rslora, targets=("q", "k", "v", "o", "gate", "up", "down"))
  model = Transformer(arch, lora=lora, rngs=nnx.Rngs(0))
  for _, module in nnx.iter_modules(model):  # non-zero B so the adapters matter
    if isinstance(module, Projection) and module.lora is not None:
      module.lora_b[...] = jax.random.normal(jax.random.key(1), module.lora_b[...].shape) * 0.1
  batch = _batch(arch.vocab_size)
  args = (jnp.asarray(batch["tokens"]), jnp.asarray(batch["positions"]), jnp.asarray(batch["segment_ids"]))
  unmerged_logits, _ = model(*args)
  graphdef, params, frozen = nnx.split(model, nnx.LoRAParam, ...)
  merged = merge_lora(graphdef, params, frozen)
  np.testing.assert_array_equal(model(*args)[0], unmerged_logits)  # merging leaves the adapted model intact
  plain = nnx.eval_shape(lambda: Transformer(arch, rngs=nnx.Rngs(0)))
  nnx.update(plain, merged)
  base = Transformer(arch, rngs=nnx.Rngs(0))
  nnx.update(base, nnx.state(model, nnx.Not(nnx.LoRAParam)))
  assert np.abs(np.asarray(base(*args)[0] - unmerged_logits)).max() > 1e-2  # adapters change the output
  np.testing.assert_allclose(plain(*args)[0], unmerged_logits, atol=1e-4)


def test_rslora_and_standard_scale_the_update_by_alpha_over_sqrt_r_and_alpha_over_r():
  x = jax.random.normal(jax.random.key(0), (2, 64))
  arch = get_preset("tiny")
  for rslora, scale in ((True, 16 / 8 ** 0.5), (False, 16 / 8)):
    lora = LoraConfig(rank=8, alpha=16, rslora=rslora, targets=("gate",))
    model = Transformer(arch, lora=lora, rngs=nnx.Rngs(0))
    proj = model.layers[0].mlp.gate_proj
    proj.lora_b[...] = jnp.ones_like(proj.lora_b[...])
    delta = proj(x) - x @ proj.kernel[...]
    np.testing.assert_allclose(delta, scale * (x @ proj.lora_a[...]) @ proj.lora_b[...], rtol=1e-5, atol=1e-5)


def test_lora_dropout_acts_only_in_training():
  arch = get_preset("tiny")
  model = Transformer(arch, lora=LoraConfig(rank=4, dropout=0.5, targets=("q",)), rngs=nnx.Rngs(0))
  proj = model.layers[0].attn.q_proj
  proj.lora_b[...] = jnp.ones_like(proj.lora_b[...])
  x = jax.random.normal(jax.random.key(0), (3, 64))
  assert not np.allclose(proj(x, jax.random.key(1)), proj(x))
  np.testing.assert_array_equal(proj(x), proj(x, None))


def test_adapters_are_sharded_like_their_base_weights(python_subprocess):
  code = """
  import json, jax, optax
  from flax import nnx
  from inoc_jax.model.config import get_preset
  from inoc_jax.model.lora import LoraConfig
  from inoc_jax.model.transformer import Transformer
  from inoc_jax.sharding.mesh import make_mesh
  from inoc_jax.model.build import ModelSpec
  from inoc_jax.training.train_state import init_train_state
  arch = get_preset("tiny")
  spec = ModelSpec(lambda rngs: Transformer(arch, lora=LoraConfig(rank=4), rngs=rngs), nnx.LoRAParam)
  _, state, _ = init_train_state(spec, optax.adamw(1e-3), make_mesh({"data": 2, "fsdp": 2, "tensor": 2}), 0)
  layer = state.params["layers"][0]
  specs = {f"{m}/{p}/{w}": list(layer[m][p][w][...].sharding.spec) for m, p in (("attn", "q_proj"), ("attn", "o_proj"),
           ("mlp", "down_proj")) for w in ("lora_a", "lora_b")}
  mu = state.opt_state[0].mu["layers"][0]["attn"]["q_proj"]["lora_b"][...]
  print(json.dumps(dict(specs=specs, mu=list(mu.sharding.spec))))
  """
  result = python_subprocess(code, devices=8)
  assert result["specs"] == {
      "attn/q_proj/lora_a": ["fsdp"],            # [d_model, r]: d_model split like the kernel's
      "attn/q_proj/lora_b": [None, "tensor"],    # [r, heads, hd]: heads split like the kernel's
      "attn/o_proj/lora_a": ["tensor"],          # [heads, hd, r]
      "attn/o_proj/lora_b": [None, "fsdp"],      # [r, d_model]
      "mlp/down_proj/lora_a": ["tensor"],        # [mlp, r]
      "mlp/down_proj/lora_b": [None, "fsdp"],    # [r, d_model]
  }
  assert result["mu"] == [None, "tensor"]  # Adam moments follow their adapter


def test_trainer_samples_from_the_merged_model_with_the_unmerged_greedy_output():
  from inoc_jax import config_lib, trainer  # pylint: disable=g-import-not-at-top
  from inoc_jax.sampling import Sampler, SamplingParams  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config("configs/sycophancy.py:tiny", ["lora.enabled=True", "lora.rank=4"])
  arch = get_preset("tiny")
  spec = build.training_spec(config, arch)
  mesh = make_mesh({"data": -1})
  graphdef, state, _ = init_train_state(spec, optax.sgd(0.1), mesh, seed=0)
  state = dataclasses.replace(state, params=jax.tree.map(
      lambda x: x + 0.05 * jax.random.normal(jax.random.key(3), x.shape), state.params))
  merged_graphdef, merged_states = trainer.sampling_model(config, arch, graphdef, state, mesh)
  assert len(merged_states) == 1
  assert not jax.tree_util.tree_leaves(nnx.state(nnx.merge(merged_graphdef, *merged_states), nnx.LoRAParam))
  prompts = [[5, 6, 7, 8], [9, 10]]
  params = SamplingParams(max_new_tokens=8)
  unmerged = Sampler(graphdef, state.params, state.frozen, mesh=mesh, batch_size=2, progress=False)
  merged = Sampler(merged_graphdef, *merged_states, mesh=mesh, batch_size=2, progress=False)
  tokens = lambda sampler: [list(o[0].tokens) for o in sampler.generate(prompts, params)]
  assert tokens(merged) == tokens(unmerged)
