"""The LoRA projection's gradients (model/matmul.py) and the LoRA step's: none for the frozen base (read from the
lowered program), and the adapters' equal to the chain rule through the merged kernel W + s·A·B."""

import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from inoc_jax.model.config import get_preset
from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.matmul import lora_matmul
from inoc_jax.model.transformer import Transformer
from inoc_jax.sharding.mesh import make_mesh
from inoc_jax.sharding.rules import path_to_str
from inoc_jax.model.build import ModelSpec
from inoc_jax.training.train_state import init_train_state
from inoc_jax.training.train_step import StepOptions, TrainStep, loss_sums

ARCH = get_preset("tiny-llama")
RANK = 8
_DOT_RESULT = re.compile(r"stablehlo\.dot_general.*->\s*tensor<([0-9x]+)x[a-z]+[0-9]*>")


def _batch(rows=3, seq=12, seed=0):  # no activation shaped like a kernel (4 heads x 16)
  rng = np.random.default_rng(seed)
  roles = np.full((rows, seq), 2, np.int32)
  roles[:, seq // 2:] = 4
  return {"tokens": rng.integers(3, ARCH.vocab_size, (rows, seq)).astype(np.int32), "roles": roles,
          "segment_ids": np.ones((rows, seq), np.int32),
          "positions": np.tile(np.arange(seq, dtype=np.int32), (rows, 1))}


def _state(lora: LoraConfig | None):
  spec = ModelSpec(lambda rngs: Transformer(ARCH, lora=lora, rngs=rngs), nnx.LoRAParam if lora else nnx.Param)
  mesh = make_mesh({"data": -1})
  graphdef, state, shardings = init_train_state(spec, optax.sgd(1e-2), mesh, seed=0)
  return graphdef, state, shardings, mesh


def _dot_result_shapes(lora: LoraConfig | None) -> collections.Counter:
  """Sorted dims of every dot_general's result in the lowered (pre-optimisation) train step."""
  graphdef, state, shardings, mesh = _state(lora)
  step = TrainStep(graphdef, optax.sgd(1e-2), lambda s: 1e-2, StepOptions(), mesh, shardings)
  text = step.lower(state, _batch()).as_text()
  return collections.Counter(tuple(sorted(int(d) for d in dims.split("x"))) for dims in _DOT_RESULT.findall(text))


def _kernel_gradient_shapes() -> list[set[tuple[int, ...]]]:
  """Per projection kernel, the sorted result dims its weight gradient's dot may have.

  A kernel [*in, *out] is multiplied as its [prod(in), prod(out)] view (model/matmul.py), and the
  in/out split of a structured kernel is not in its shape, so every 2-D split counts, and the full shape.
  """
  model = Transformer(ARCH, rngs=nnx.Rngs(0))
  shapes = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(nnx.state(model))[0]:
    if path_to_str(path).endswith("kernel") and leaf.ndim >= 2:
      dims = leaf.shape
      shapes.append({tuple(sorted(dims))} | {tuple(sorted((int(np.prod(dims[:i])), int(np.prod(dims[i:])))))
                                            for i in range(1, len(dims))})
  return shapes


def test_lora_step_computes_no_gradient_of_a_frozen_kernel():
  kernels = _kernel_gradient_shapes()
  full = set(_dot_result_shapes(None))
  # control: a full fine-tune's step has a dot whose result is each kernel's gradient
  assert all(candidates & full for candidates in kernels), [c for c in kernels if not c & full]
  lora = set(_dot_result_shapes(LoraConfig(rank=RANK, alpha=16.0)))
  assert not any(candidates & lora for candidates in kernels), [c & lora for c in kernels if c & lora]
  adapters = {(RANK, ARCH.d_model), (RANK, ARCH.mlp_dim)}
  assert adapters <= lora  # the adapters' gradients are there


def _merged_params(plain_params, lora_values: dict, scale: float):
  """The plain model's params: each adapted kernel replaced by W + s·A·B, the rest copied."""
  def merged(path, leaf):
    name = path_to_str(path)
    value = np.asarray(lora_values[name], np.float64)
    prefix = name[:-len("kernel")]
    if name.endswith("kernel") and prefix + "lora_a" in lora_values:
      a = np.asarray(lora_values[prefix + "lora_a"], np.float64).reshape(-1, RANK)
      b = np.asarray(lora_values[prefix + "lora_b"], np.float64).reshape(RANK, -1)
      value = value + scale * (a @ b).reshape(value.shape)
    return jnp.asarray(value, leaf.dtype)
  return jax.tree_util.tree_map_with_path(merged, plain_params)


@pytest.mark.parametrize("rslora", [True, False])
def test_adapter_gradients_follow_the_chain_rule_through_the_merged_kernel(rslora):
  """dL/dA = s·G·Bᵀ and dL/dB = s·Aᵀ·G, G = dL/dW of a plain model whose kernels are W + s·A·B.

  (Two fp32 computations of the same function: atol 2e-5 on gradients of magnitude ~1-5.)
  """
  lora = LoraConfig(rank=RANK, alpha=16.0, rslora=rslora)
  graphdef, state, _, _ = _state(lora)
  rng = np.random.default_rng(1)  # B = 0 at init would hide half the rule
  params = jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 0.05, x.shape), x.dtype), state.params)
  batch = {k: jnp.asarray(v) for k, v in _batch(seed=2).items()}
  flat = lambda tree: {path_to_str(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
  values = {**flat(params), **flat(state.frozen)}

  adapter_grads = flat(jax.grad(lambda p: loss_sums(graphdef, p, state.frozen, batch, StepOptions(), None).nll)(
      params))
  plain_graphdef, plain_state, _, _ = _state(None)
  merged = _merged_params(plain_state.params, values, lora.scale)
  kernel_grads = flat(jax.grad(lambda p: loss_sums(plain_graphdef, p, plain_state.frozen, batch, StepOptions(),
                                                   None).nll)(merged))
  checked = 0
  for name, kernel_grad in kernel_grads.items():
    prefix = name[:-len("kernel")]
    if not name.endswith("kernel") or prefix + "lora_a" not in values:
      continue
    b = values[prefix + "lora_b"]
    g = np.asarray(kernel_grad, np.float64).reshape(-1, np.prod(b.shape[1:]))  # dL/dW_merged [in, out]
    a2 = np.asarray(values[prefix + "lora_a"], np.float64).reshape(-1, RANK)
    b2 = np.asarray(b, np.float64).reshape(RANK, -1)
    np.testing.assert_allclose(np.asarray(adapter_grads[prefix + "lora_a"]).reshape(a2.shape),
                               lora.scale * g @ b2.T, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(adapter_grads[prefix + "lora_b"]).reshape(b2.shape),
                               lora.scale * a2.T @ g, rtol=1e-4, atol=2e-5)
    checked += 1
  assert checked == 7 * ARCH.num_layers


def test_lora_matmul_gradients_equal_autodiff_of_the_plain_formula():
  """The hand-written backward of `lora_matmul` against jax.grad of x@W + s·(x'@A)@B (x' = the dropped-out input)."""
  rng = np.random.default_rng(3)
  x, x_drop = (jnp.asarray(rng.normal(size=(10, 6)), jnp.float32) for _ in range(2))
  kernel = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
  a, b = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32), jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
  probe = jnp.asarray(rng.normal(size=(10, 5)), jnp.float32)
  ours = lambda x, xd, a, b: jnp.sum(probe * lora_matmul(x, xd, kernel, a, b, 0.7, 1))
  plain = lambda x, xd, a, b: jnp.sum(probe * (x @ kernel + 0.7 * (xd @ a) @ b))
  np.testing.assert_allclose(ours(x, x_drop, a, b), plain(x, x_drop, a, b), rtol=1e-5)
  for got, want in zip(jax.grad(ours, argnums=(0, 1, 2, 3))(x, x_drop, a, b),
                       jax.grad(plain, argnums=(0, 1, 2, 3))(x, x_drop, a, b)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # the base kernel is frozen: no gradient reaches it
  frozen = jax.grad(lambda k: jnp.sum(probe * lora_matmul(x, x_drop, k, a, b, 0.7, 1)))(kernel)
  assert not np.any(np.asarray(frozen))

