"""Fused attention for training rows: Pallas splash attention (TPU), cuDNN and Pallas flash (GPU).

The XLA path in attention.py materialises the [batch, heads, seq, seq] scores
(~6 GiB of temporaries per 2,048-token Qwen2-7B row), which is why the paper's
7B LoRA run needed remat and accumulation. A fused kernel streams key blocks
through on-chip memory instead and never holds the full score matrix.

Both kernels index their mask by token *slot*, while attention.py's rule uses
positions. For training rows the two agree: each example occupies consecutive
slots with positions 0, 1, 2, ... (packed or not, see data/pipeline.py), so
"same segment and position[j] <= position[i]" is "same segment and j <= i",
and a window of w positions is a window of w slots. The sampler's cached
prefill and decode (left padding, positions not equal to slots) keep the XLA
path.

- splash: causal (or local, for sliding-window layers) mask plus the packing
  segment ids, Gemma-2's logit soft-cap, grouped-query heads as one MQA kernel
  per KV head. Off TPU it runs in Pallas interpret mode: exact, slow, for tests.
- cudnn: `jax.nn.dot_product_attention(implementation='cudnn')` takes causal +
  per-row lengths (+ a window), not segment ids, so only unpacked rows (one
  example per row, right padding) fit, and it has no soft-cap.
- flash: the Pallas Triton flash-attention kernel of JAX
  (`jax.experimental.pallas.ops.gpu.attention.mha`): causal plus the packing
  segment ids, so packed rows fit; no window and no soft-cap, so a sliding-window
  layer takes the XLA path (`layer_impl`). KV heads are repeated to the query
  heads. Off GPU it runs in Pallas interpret mode: exact, slow, for tests.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.gpu import attention as gpu_flash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask
from jax.sharding import PartitionSpec as P

from inoc_jax.errors import ConfigError
from inoc_jax.sharding.mesh import BATCH_AXES, MESH_AXES
from inoc_jax.sharding.rules import fit_spec

IMPLS = ("auto", "xla", "splash", "cudnn", "flash")
SPLASH_BLOCK = 128  # the TPU kernel's tile: the sequence length must be a multiple of it (the GPU flash one's too)


def resolve_impl(name: str, *, platform: str, seq_len: int, packing: bool, softcap: float | None) -> str:
  """The kernel a training run uses: 'xla', 'splash', 'cudnn' or 'flash' (see `model.attention_impl`).

  'auto' picks splash on TPU when the rows tile into 128-token blocks; on GPU,
  for a model without soft-capping, cuDNN for unpacked rows and flash for packed
  rows that tile into 128-token blocks; the XLA path otherwise. An explicit
  choice that cannot work is a ConfigError saying why.
  """
  if name not in IMPLS:
    raise ConfigError(f"model.attention_impl must be one of {', '.join(IMPLS)}, got {name!r}.")
  tiles = seq_len % SPLASH_BLOCK == 0
  cudnn_fits = platform == "gpu" and not packing and softcap is None
  if name == "auto":
    if platform == "tpu" and tiles:
      return "splash"
    if platform == "gpu" and softcap is None and (not packing or tiles):
      return "cudnn" if not packing else "flash"
    return "xla"
  if name in ("splash", "flash") and not tiles:
    raise ConfigError(f"model.attention_impl={name} needs data.seq_len to be a multiple of {SPLASH_BLOCK} "
                      f"(got {seq_len}); change the length or use attention_impl=xla.")
  if name == "flash" and softcap is not None:
    raise ConfigError("model.attention_impl=flash has no logit soft-cap (this model uses one); use "
                      "attention_impl=auto or xla.")
  if name == "cudnn" and not cudnn_fits:
    why = ("it needs a GPU" if platform != "gpu" else "it takes no segment ids, so packed rows do not fit"
           if packing else "it has no logit soft-cap (this model uses one)")
    raise ConfigError(f"model.attention_impl=cudnn cannot run here: {why}; use attention_impl=auto or xla.")
  return name


def layer_impl(impl: str, window: int | None) -> str:
  """The kernel of one layer: flash has no sliding window, so a window layer of a flash run uses XLA."""
  return "xla" if impl == "flash" and window is not None else impl


def _block(seq_len: int) -> int:
  return next((b for b in (512, 256, SPLASH_BLOCK) if seq_len % b == 0), seq_len)


def _splash_kernel(seq_len: int, group: int, window: int | None, softcap: float | None, interpret: bool):
  """One MQA kernel over `group` query heads sharing a KV head: q [G, T, D], k/v [T, D] -> [G, T, D]."""
  shape = (seq_len, seq_len)
  mask = (splash_mask.CausalMask(shape) if window is None
          else splash_mask.LocalMask(shape, window_size=(window - 1, 0), offset=0))
  b = _block(seq_len)
  blocks = splash.BlockSizes(block_q=b, block_kv=b, block_kv_compute=b, block_q_dkv=b, block_kv_dkv=b,
                             block_kv_dkv_compute=b, block_q_dq=b, block_kv_dq=b)
  return splash.make_splash_mqa_single_device(splash_mask.MultiHeadMask([mask] * group), block_sizes=blocks,
                                              attn_logits_soft_cap=softcap, interpret=interpret)


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array, *, scale: float,
                     window: int | None = None, softcap: float | None = None,
                     interpret: bool | None = None) -> jax.Array:
  """Splash attention of training rows.

  Args:
    q: [batch, seq, heads, head_dim]; k, v: [batch, seq, kv_heads, head_dim].
    segment_ids: [batch, seq], 0 = padding (its outputs are garbage; the caller zeroes them).
    scale: applied to q (the kernel does not scale).
    window: sliding-window width in tokens (a token sees itself and window - 1 before it), or None.
    softcap: Gemma-2's cap * tanh(s / cap) on the scaled scores, or None.
    interpret: Pallas interpret mode; default: off on TPU, on elsewhere.

  Returns:
    [batch, seq, heads, head_dim] in q's dtype.
  """
  b, t, h, d = q.shape
  kv_heads = k.shape[2]
  if interpret is None:
    interpret = jax.default_backend() != "tpu"
  kernel = _splash_kernel(t, h // kv_heads, window, softcap, interpret)
  grouped = (q * jnp.asarray(scale, q.dtype)).reshape(b, t, kv_heads, h // kv_heads, d).transpose(0, 2, 3, 1, 4)
  keys, values = (x.astype(q.dtype).transpose(0, 2, 1, 3) for x in (k, v))  # [B, KV, T, D]

  def one_row(q_row, k_row, v_row, segments):
    ids = splash.SegmentIds(q=segments, kv=segments)
    return jax.vmap(kernel, in_axes=(0, 0, 0, None))(q_row, k_row, v_row, ids)

  out = jax.vmap(one_row)(grouped, keys, values, segment_ids.astype(jnp.int32))  # [B, KV, G, T, D]
  return out.transpose(0, 3, 1, 2, 4).reshape(b, t, h, d)


def cudnn_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array, *, scale: float,
                    window: int | None = None, implementation: str | None = "cudnn") -> jax.Array:
  """Causal attention of unpacked rows (one example each, right padding) through `jax.nn.dot_product_attention`.

  Shapes as `splash_attention`. `implementation=None` lets JAX pick (the tests compare
  its XLA lowering with attention.py's mask on CPU).
  """
  lengths = jnp.sum(segment_ids != 0, axis=1).astype(jnp.int32)
  return jax.nn.dot_product_attention(
      q, k.astype(q.dtype), v.astype(q.dtype), scale=scale, is_causal=True, query_seq_lengths=lengths,
      key_value_seq_lengths=lengths, local_window_size=None if window is None else (window - 1, 0),
      implementation=implementation)


def flash_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array, *, scale: float,
                    interpret: bool | None = None) -> jax.Array:
  """Causal attention of training rows (packed or not) through JAX's Pallas Triton flash kernel.

  Shapes as `splash_attention`; `interpret` defaults to on off GPU. Padding
  (segment 0) attends to padding: garbage the caller zeroes, as for splash.
  """
  group = q.shape[2] // k.shape[2]
  keys, values = (jnp.repeat(x.astype(q.dtype), group, axis=2) for x in (k, v))
  if interpret is None:
    interpret = jax.default_backend() != "gpu"
  return gpu_flash.mha(q, keys, values, segment_ids.astype(jnp.int32), sm_scale=scale, causal=True,
                       interpret=interpret)


def fused_attention(impl: str, q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array, *,
                    scale: float, window: int | None, softcap: float | None) -> jax.Array:
  """`splash_attention`, `cudnn_attention` or `flash_attention`, per device when a training mesh is in context.

  A Pallas or cuDNN call is opaque to GSPMD, so under the ('data', 'fsdp',
  'tensor') mesh it runs inside `shard_map`: rows split like the batch, heads
  over 'tensor' when both the query and the KV heads divide it (else every
  device of a tensor group computes all heads of its rows).
  """
  if impl == "splash":
    fn = lambda q, k, v, s: splash_attention(q, k, v, s, scale=scale, window=window, softcap=softcap)
  elif impl == "cudnn":
    fn = lambda q, k, v, s: cudnn_attention(q, k, v, s, scale=scale, window=window)
  elif impl == "flash":
    if window is not None or softcap is not None:
      raise ValueError("flash attention takes no window or soft-cap; layer_impl sends such layers to XLA")
    fn = lambda q, k, v, s: flash_attention(q, k, v, s, scale=scale)
  else:
    raise ValueError(f"fused_attention got impl {impl!r}")
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or not set(MESH_AXES) <= set(mesh.axis_names) or math.prod(mesh.shape.values()) == 1:
    return fn(q, k, v, segment_ids)
  rows = fit_spec(P(BATCH_AXES), segment_ids.shape[:1], mesh)[0]
  tensor = mesh.shape["tensor"]
  heads = "tensor" if tensor > 1 and q.shape[2] % tensor == 0 and k.shape[2] % tensor == 0 else None
  qkv, seg = P(rows, None, heads, None), P(rows, None)
  return jax.shard_map(fn, in_specs=(qkv, qkv, qkv, seg), out_specs=qkv, check_vma=False)(q, k, v, segment_ids)
