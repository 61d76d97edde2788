"""The sharded train step: device-count invariance, rule-table shardings, accumulation, tracing."""


import numpy as np
import pytest

WORKER = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np, optax
from flax import nnx
from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from inoc_jax.model.lora import LoraConfig
from inoc_jax.sharding import rules
from inoc_jax.sharding.mesh import make_mesh, batch_sharding
from inoc_jax.model.build import ModelSpec
from inoc_jax.training.train_state import init_train_state
from inoc_jax.training.train_step import TrainStep, StepOptions, BATCH_KEYS

MESH = dict(data={data}, fsdp={fsdp}, tensor={tensor})
ACCUM = {accum}
LORA = {lora}
cfg = get_preset("tiny")
lora = LoraConfig(rank=4, alpha=8, rslora=True) if LORA else None
spec = ModelSpec(lambda rngs: Transformer(cfg, lora=lora, rngs=rngs), nnx.LoRAParam if LORA else nnx.Param)
mesh = make_mesh(MESH)
tx = optax.sgd(-1.0, momentum=0.0)  # update == gradient; the zero-decay trace gives param-shaped opt state
graphdef, state, shardings = init_train_state(spec, tx, mesh, seed=3)

# rule table applied to every leaf, including optimizer state
checked = 0
for tree in (state.params, state.frozen, state.opt_state):
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    name = rules.path_to_str(path)
    want = rules.fit_spec(rules.spec_for(name), leaf.shape, mesh)
    assert leaf.sharding.spec == want, (name, leaf.sharding.spec, want)
    checked += 1
sharded_leaves = sum(1 for x in jax.tree.leaves(state.params) + jax.tree.leaves(state.frozen)
                     if x.addressable_shards[0].data.shape != x.shape)

rng = np.random.default_rng(0)
B, T = 8, 24
tokens = rng.integers(0, cfg.vocab_size, (B, T)).astype(np.int32)
roles = np.full((B, T), 2, np.int32)
segments = np.ones((B, T), np.int32)
positions = np.tile(np.arange(T), (B, 1)).astype(np.int32)
for r in range(B):  # ragged: assistant span and padding differ per row
  start, end = 4 + r, T - (r % 3) * 3
  roles[r, start:end] = 4
  roles[r, 2:4] = 3
  roles[r, end:] = 0; segments[r, end:] = 0; positions[r, end:] = 0
batch = dict(tokens=tokens, roles=roles, segment_ids=segments, positions=positions)
gbatch = {{k: jax.device_put(v, batch_sharding(mesh)) for k, v in batch.items()}}
old = jax.device_get(state.params)
step = TrainStep(graphdef, tx, lambda s: 1.0, StepOptions(grad_accum_steps=ACCUM, loss_chunk_size={chunk}),
                 mesh, shardings)
state, metrics = step(state, gbatch)
jax.block_until_ready(state)
new = jax.device_get(state.params)
grads = {{rules.path_to_str(p): (np.asarray(n) - np.asarray(o)).tolist()
         for (p, n), o in zip(jax.tree_util.tree_flatten_with_path(new)[0], jax.tree.leaves(old))}}
for _ in range(4):
  state, metrics2 = step(state, gbatch)
  jax.block_until_ready(state)
opt_sharded = sum(1 for x in jax.tree.leaves(state.opt_state) if x.addressable_shards[0].data.shape != x.shape)
print(json.dumps(dict(loss=float(metrics["loss"]), count=float(metrics["supervised_token_count"]),
                      grads=grads, traces=step.trace_count, checked=checked, sharded_leaves=sharded_leaves, opt_sharded=opt_sharded,
                      devices=jax.device_count())))
"""


def _run(python_subprocess, devices, data, fsdp, tensor, accum=1, lora=False, chunk=None):
  code = WORKER.format(data=data, fsdp=fsdp, tensor=tensor, accum=accum, lora=lora, chunk=chunk)
  return python_subprocess(code, devices=devices, timeout=300)


@pytest.fixture(scope="module")
def reference(request):
  from tests.conftest import run_python
  return _run(run_python, 1, 1, 1, 1)


def _assert_same(result, reference):
  assert result["count"] == reference["count"]
  assert result["loss"] == pytest.approx(reference["loss"], rel=1e-5)
  assert result["grads"].keys() == reference["grads"].keys()
  for name, grad in reference["grads"].items():
    np.testing.assert_allclose(np.asarray(result["grads"][name]), np.asarray(grad), atol=2e-6, rtol=1e-4,
                               err_msg=name)


@pytest.mark.parametrize("devices,mesh", [
    (4, (2, 2, 1)),
    (8, (8, 1, 1)),
    (8, (2, 2, 2)),
    (8, (1, 4, 2)),
])
def test_loss_and_gradients_match_single_device(python_subprocess, reference, devices, mesh):
  result = _run(python_subprocess, devices, *mesh)
  assert result["devices"] == devices
  assert result["checked"] > 0
  if mesh[1] > 1 or mesh[2] > 1:
    assert result["sharded_leaves"] > 0  # fsdp/tensor axes really split parameters
    assert result["opt_sharded"] > 0  # ... and Adam's moments alike
  _assert_same(result, reference)
  assert result["traces"] == 1  # five steps, one compilation


def test_gradient_accumulation_equals_one_big_batch(python_subprocess, reference):
  result = _run(python_subprocess, 4, 2, 2, 1, accum=2, chunk=8)
  _assert_same(result, reference)
  single = _run(python_subprocess, 1, 1, 1, 1, accum=4)
  _assert_same(single, reference)


def test_lora_sharded_run_updates_only_adapters(python_subprocess):
  result = _run(python_subprocess, 8, 2, 2, 2, lora=True)
  assert result["grads"] and all("lora_" in name for name in result["grads"])
  assert result["traces"] == 1
