"""Fused attention (model.attention_impl): the splash and GPU flash kernels, run in Pallas interpret mode on CPU,
and the cuDNN call's arguments agree with attention.py's mask rule on training rows; forward and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from inoc_jax import config_lib
from inoc_jax.errors import ConfigError
from inoc_jax.model.attention import attention_mask, softcapped_attention
from inoc_jax.model.config import get_preset
from inoc_jax.model.fused_attention import cudnn_attention, flash_attention, resolve_impl, splash_attention
from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.transformer import Transformer
from tests.conftest import run_python

B, T, H, KV, D = 2, 128, 4, 2, 16


def _rows(packed: bool) -> tuple[np.ndarray, np.ndarray]:
  """(segment_ids, positions) [B, T] as data/pipeline.py writes them: examples on consecutive slots, positions
  from 0 in each, padding (segment 0) at the end."""
  lengths = [[40, 50, 30], [70, 41]] if packed else [[100], [57]]
  segments, positions = np.zeros((B, T), np.int32), np.zeros((B, T), np.int32)
  for row, parts in enumerate(lengths):
    start = 0
    for s, n in enumerate(parts, 1):
      segments[row, start:start + n], positions[row, start:start + n] = s, np.arange(n)
      start += n
  return segments, positions


def _reference(q, k, v, segments, positions, scale, window, softcap):
  mask = attention_mask(segments, positions, segments, positions, window)
  if softcap is None:
    return jax.nn.dot_product_attention(q, k, v, mask=mask, scale=scale)
  return softcapped_attention(q, k, v, mask, scale, softcap)


def _qkv(seed=0):
  keys = jax.random.split(jax.random.key(seed), 4)
  q = jax.random.normal(keys[0], (B, T, H, D))
  k, v = (jax.random.normal(key, (B, T, KV, D)) for key in keys[1:3])
  return q, k, v, jax.random.normal(keys[3], (B, T, H, D))


def _value_and_grads(attend, segments):
  """Output and d(<out, cotangent>)/d(q, k, v), padding queries zeroed (the caller's rule)."""
  q, k, v, cotangent = _qkv()
  real = jnp.asarray(segments != 0)[:, :, None, None]

  def f(q, k, v):
    out = jnp.where(real, attend(q, k, v), 0.0)
    return jnp.sum(out * cotangent), out

  (_, out), grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(q, k, v)
  return out, grads


@pytest.mark.parametrize("packed,window,softcap", [
    (True, None, None), (False, None, None), (True, 24, None), (False, 24, None), (True, None, 20.0)],
    ids=["packed", "unpacked", "packed-window", "unpacked-window", "packed-softcap"])
def test_splash_interpret_matches_the_xla_mask_forward_and_backward(packed, window, softcap):
  segments, positions = _rows(packed)
  scale = D ** -0.5
  want, want_grads = _value_and_grads(
      lambda q, k, v: _reference(q, k, v, segments, positions, scale, window, softcap), segments)
  got, got_grads = _value_and_grads(
      lambda q, k, v: splash_attention(q, k, v, jnp.asarray(segments), scale=scale, window=window,
                                       softcap=softcap, interpret=True), segments)
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
  for name, g, w in zip("qkv", got_grads, want_grads):
    np.testing.assert_allclose(g, w, atol=5e-5, rtol=1e-4, err_msg=name)
  assert float(jnp.abs(got_grads[1]).max()) > 0


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
def test_gpu_flash_interpret_matches_the_xla_mask_forward_and_backward(packed):
  segments, positions = _rows(packed)
  scale = D ** -0.5
  want, want_grads = _value_and_grads(
      lambda q, k, v: _reference(q, k, v, segments, positions, scale, None, None), segments)
  got, got_grads = _value_and_grads(
      lambda q, k, v: flash_attention(q, k, v, jnp.asarray(segments), scale=scale, interpret=True), segments)
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
  for name, g, w in zip("qkv", got_grads, want_grads):
    np.testing.assert_allclose(g, w, atol=5e-5, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("window", [None, 24])
def test_cudnn_arguments_give_the_xla_mask_on_unpacked_rows(window):
  """On a GPU the same call runs cuDNN; here JAX's XLA lowering of it shows the arguments mean our mask."""
  segments, positions = _rows(packed=False)
  scale = D ** -0.5
  want, want_grads = _value_and_grads(
      lambda q, k, v: _reference(q, k, v, segments, positions, scale, window, None), segments)
  got, got_grads = _value_and_grads(
      lambda q, k, v: cudnn_attention(q, k, v, jnp.asarray(segments), scale=scale, window=window,
                                      implementation=None), segments)
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(g, w, atol=5e-5, rtol=1e-4)


@pytest.mark.parametrize("impl, preset", [("splash", "tiny-gemma2"), ("flash", "tiny-mistral")])
def test_the_model_with_a_fused_kernel_matches_xla_on_a_packed_batch(impl, preset):
  """Through Transformer -> Block -> Attention with LoRA: logits and adapter gradients agree (tiny-gemma2: GQA,
  soft-cap, a sliding-window layer, splash; tiny-mistral: GQA, flash, and one window layer that flash leaves to
  XLA)."""
  arch = get_preset(preset).replace(sliding_window=24)
  if impl == "flash":
    arch = arch.replace(layer_types=("full", "sliding"))
  segments, positions = _rows(packed=True)
  tokens = np.random.default_rng(0).integers(1, arch.vocab_size, (B, T)).astype(np.int32)
  results = []
  for impl in ("xla", impl):
    model = Transformer(arch, lora=LoraConfig(rank=4), attention_impl=impl, rngs=nnx.Rngs(0))
    graphdef, adapters, rest = nnx.split(model, nnx.LoRAParam, ...)

    def loss(adapters, rest):
      logits, _ = nnx.merge(graphdef, adapters, rest)(tokens, positions, segments)
      return jnp.sum(jnp.where(segments[..., None] != 0, logits, 0.0) ** 2) * 1e-3, logits

    (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(adapters, rest)
    results.append((logits, grads))
  (want, want_grads), (got, got_grads) = results
  real = segments != 0
  np.testing.assert_allclose(np.asarray(got)[real], np.asarray(want)[real], atol=1e-4, rtol=1e-5)
  for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-3)


def test_splash_under_a_data_and_tensor_mesh_matches_one_device():
  """Inside the train step's mesh the kernel runs per device under shard_map (rows over data x fsdp, heads
  over tensor); the result is the single-device one."""
  result = run_python("""
import json, jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from inoc_jax.model.fused_attention import fused_attention
from inoc_jax.sharding.mesh import make_mesh
rng = np.random.default_rng(0)
q = rng.normal(size=(4, 128, 4, 16)).astype(np.float32)
k, v = (rng.normal(size=(4, 128, 2, 16)).astype(np.float32) for _ in range(2))
seg = np.ones((4, 128), np.int32); seg[:, 100:] = 0; seg[1, 60:100] = 2
attend = lambda q, k, v, s: fused_attention("splash", q, k, v, s, scale=0.25, window=None, softcap=None)
alone = jax.jit(attend)(q, k, v, seg)
mesh = make_mesh(dict(data=2, fsdp=1, tensor=2))
with jax.set_mesh(mesh):
  text = jax.jit(attend).lower(q, k, v, seg).as_text()
  sharded = jax.jit(attend, in_shardings=(NamedSharding(mesh, P(("data", "fsdp"), None, "tensor")),) * 3
                    + (NamedSharding(mesh, P(("data", "fsdp"))),))(q, k, v, seg)
real = seg[..., None, None] != 0
print(json.dumps(dict(diff=float(np.abs(np.where(real, np.asarray(sharded) - np.asarray(alone), 0)).max()),
                      shard_map="shard_map" in text or "sdy.manual_computation" in text)))
""", devices=4, timeout=300)
  assert result["shard_map"]
  assert result["diff"] < 1e-5


def test_resolve_impl_picks_by_platform_and_refuses_what_cannot_run():
  kw = dict(seq_len=256, packing=True, softcap=None)
  assert resolve_impl("auto", platform="tpu", **kw) == "splash"
  assert resolve_impl("auto", platform="cpu", **kw) == "xla"
  assert resolve_impl("auto", platform="gpu", **kw) == "flash"  # packed rows: cuDNN takes no segment ids
  assert resolve_impl("auto", platform="gpu", seq_len=200, packing=True, softcap=None) == "xla"
  assert resolve_impl("auto", platform="gpu", seq_len=256, packing=False, softcap=None) == "cudnn"
  assert resolve_impl("auto", platform="gpu", seq_len=256, packing=False, softcap=50.0) == "xla"
  assert resolve_impl("auto", platform="gpu", seq_len=256, packing=True, softcap=50.0) == "xla"
  assert resolve_impl("flash", platform="cpu", **kw) == "flash"  # interpret mode
  assert resolve_impl("auto", platform="tpu", seq_len=200, packing=True, softcap=None) == "xla"
  assert resolve_impl("splash", platform="cpu", **kw) == "splash"  # interpret mode
  for name, platform, seq_len, packing, words in [("splash", "tpu", 200, True, "multiple of 128"),
                                                  ("cudnn", "cpu", 256, False, "needs a GPU"),
                                                  ("cudnn", "gpu", 256, True, "packed rows"),
                                                  ("flash", "gpu", 200, True, "multiple of 128"),
                                                  ("triton", "gpu", 256, False, "must be one of")]:
    with pytest.raises(ConfigError, match=words):
      resolve_impl(name, platform=platform, seq_len=seq_len, packing=packing, softcap=None)
  with pytest.raises(ConfigError, match="flash has no logit soft-cap"):
    resolve_impl("flash", platform="gpu", seq_len=256, packing=True, softcap=50.0)


def test_config_validation_names_a_bad_attention_impl():
  config = config_lib.load_config("configs/sycophancy.py:tiny", ["model.attention_impl=cudnn"])
  with pytest.raises(ConfigError, match="attention_impl=cudnn cannot run here: it needs a GPU"):
    config_lib.validate(config, num_devices=1)
