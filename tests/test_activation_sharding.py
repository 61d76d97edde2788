"""Activation constraints: inert without a mesh, exact under one, for tied and untied heads."""

import jax.numpy as jnp
import numpy as np
import pytest

from inoc_jax.sharding.activations import activation_spec, constrain

WORKER = r"""
import json
import jax, jax.numpy as jnp, numpy as np, optax
from flax import nnx
from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from inoc_jax.sharding import rules
from inoc_jax.sharding.mesh import make_mesh, batch_sharding
from inoc_jax.model.build import ModelSpec
from inoc_jax.training.train_state import init_train_state
from inoc_jax.training.train_step import TrainStep, StepOptions

cfg = get_preset("{preset}")
spec = ModelSpec(lambda rngs: Transformer(cfg, rngs=rngs), nnx.Param)
mesh = make_mesh(dict(data={data}, fsdp={fsdp}, tensor={tensor}))
tx = optax.sgd(-1.0)  # the update is the gradient
graphdef, state, shardings = init_train_state(spec, tx, mesh, seed=1)
rng = np.random.default_rng(0)
B, T = 8, 16
batch = dict(tokens=rng.integers(0, cfg.vocab_size, (B, T)).astype(np.int32),
             roles=np.full((B, T), 4, np.int32), segment_ids=np.ones((B, T), np.int32),
             positions=np.tile(np.arange(T), (B, 1)).astype(np.int32))
old = jax.device_get(state.params)
step = TrainStep(graphdef, tx, lambda s: 1.0, StepOptions(loss_chunk_size=8), mesh, shardings)
state, metrics = step(state, {{k: jax.device_put(v, batch_sharding(mesh)) for k, v in batch.items()}})
new = jax.device_get(state.params)
grads = {{rules.path_to_str(p): (np.asarray(n) - np.asarray(o)).tolist()
         for (p, n), o in zip(jax.tree_util.tree_flatten_with_path(new)[0], jax.tree.leaves(old))}}
print(json.dumps(dict(loss=float(metrics["loss"]), accuracy=float(metrics["token_accuracy"]), grads=grads)))
"""


def test_constrain_is_inert_without_a_training_mesh():
  x = jnp.ones((4, 3, 8))
  assert constrain(x, "batch", "length", "embed") is x
  with pytest.raises(ValueError, match="rank 3"):
    constrain(x, "batch", "length")


def test_logical_names_map_to_mesh_axes():
  assert tuple(activation_spec((None, None, "vocab"))) == (None, None, ("tensor", "fsdp"))
  assert tuple(activation_spec(("batch_data", "length", "embed_shard"))) == ("data", None, "fsdp")
  with pytest.raises(ValueError, match="twice"):
    activation_spec(("batch", "length", "vocab"))  # fsdp would split rows and vocabulary at once


def test_constraints_apply_under_a_mesh_and_drop_non_dividing_axes(python_subprocess):
  result = python_subprocess("""
      import json, jax, jax.numpy as jnp
      from inoc_jax.sharding.activations import constrain
      from inoc_jax.sharding.mesh import make_mesh
      mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
      with jax.set_mesh(mesh):
        f = jax.jit(lambda x, y: (constrain(x, None, None, "vocab"), constrain(y, "batch", None)))
        x, y = f(jnp.ones((8, 3, 12)), jnp.ones((2, 5)))  # y: 2 rows cannot split over data x fsdp = 4
      print(json.dumps({"x": list(x.sharding.shard_shape(x.shape)), "y": list(y.sharding.shard_shape(y.shape))}))
  """, devices=8)
  assert result["x"] == [8, 3, 3]  # vocabulary over tensor x fsdp = 4
  assert result["y"] == [1, 5]     # rows over data only: fsdp does not divide the remaining 1


@pytest.mark.parametrize("preset", ["tiny-llama", "tiny-gemma", "tiny-qwen3moe"])  # untied; tied, MQA; experts
def test_sharded_step_equals_single_device_for_each_head(python_subprocess, preset):
  single = python_subprocess(WORKER.format(preset=preset, data=1, fsdp=1, tensor=1), devices=1)
  sharded = python_subprocess(WORKER.format(preset=preset, data=2, fsdp=2, tensor=2), devices=8)
  assert sharded["loss"] == pytest.approx(single["loss"], rel=1e-5)
  assert sharded["accuracy"] == pytest.approx(single["accuracy"], abs=1e-6)
  for name, grad in single["grads"].items():
    np.testing.assert_allclose(np.asarray(sharded["grads"][name]), np.asarray(grad), rtol=1e-4, atol=2e-6,
                               err_msg=name)
  assert any(np.abs(np.asarray(g)).sum() > 0 for g in single["grads"].values())
