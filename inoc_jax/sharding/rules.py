"""One declarative table from parameter path to PartitionSpec.

Paths are '/'-joined tree keys such as `layers/3/attn/q_proj/kernel`. Rules are
regular expressions matched with `re.search`, first match wins, so the same
table shards parameters, their gradients and every optimizer-state tree that
mirrors them (Adam's mu/nu paths end in the parameter path).

A mesh axis that does not divide the dimension it would shard is dropped for
that dimension (the dimension is replicated) instead of failing: e.g. Gemma's
single KV head stays replicated under tensor parallelism. A quantised kernel's
codes and scales (`kernel`, `kernel_scale`) keep the kernel's rank and rule.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# (path regex, PartitionSpec over the array's own dimensions)
PARAM_RULES: tuple[tuple[str, P], ...] = (
    (r"embedder/embedding$", P("tensor", "fsdp")),               # [vocab, d_model]
    (r"attn/[qkv]_proj/kernel(_scale)?$", P("fsdp", "tensor", None)),  # [d_model, heads, head_dim]
    (r"attn/[qkv]_proj/bias$", P("tensor", None)),               # [heads, head_dim]
    (r"attn/[qkv]_proj/lora_a$", P("fsdp", None)),               # [d_model, r]
    (r"attn/[qkv]_proj/lora_b$", P(None, "tensor", None)),       # [r, heads, head_dim]
    (r"attn/o_proj/kernel(_scale)?$", P("tensor", None, "fsdp")),  # [heads, head_dim, d_model]
    (r"attn/o_proj/lora_a$", P("tensor", None, None)),           # [heads, head_dim, r]
    (r"attn/o_proj/lora_b$", P(None, "fsdp")),                   # [r, d_model]
    (r"mlp/(gate|up)_proj/kernel(_scale)?$", P("fsdp", "tensor")),  # [d_model, mlp_dim]
    (r"mlp/(gate|up)_proj/lora_a$", P("fsdp", None)),            # [d_model, r]
    (r"mlp/(gate|up)_proj/lora_b$", P(None, "tensor")),          # [r, mlp_dim]
    (r"mlp/down_proj/kernel(_scale)?$", P("tensor", "fsdp")),  # [mlp_dim, d_model]
    (r"mlp/down_proj/lora_a$", P("tensor", None)),               # [mlp_dim, r]
    (r"mlp/down_proj/lora_b$", P(None, "fsdp")),                 # [r, d_model]
    (r"mlp/router/kernel$", P("fsdp", None)),                    # [d_model, experts]
    (r"experts/(gate|up)_proj/kernel$", P(None, "fsdp", "tensor")),  # [experts, d_model, expert_mlp]
    (r"experts/(gate|up)_proj/lora_a$", P(None, "fsdp", None)),  # [experts, d_model, r]
    (r"experts/(gate|up)_proj/lora_b$", P(None, None, "tensor")),  # [experts, r, expert_mlp]
    (r"experts/down_proj/kernel$", P(None, "tensor", "fsdp")),   # [experts, expert_mlp, d_model]
    (r"experts/down_proj/lora_a$", P(None, "tensor", None)),     # [experts, expert_mlp, r]
    (r"experts/down_proj/lora_b$", P(None, None, "fsdp")),       # [experts, r, d_model]
    (r"lm_head/kernel$", P(None, ("tensor", "fsdp"))),           # [d_model, vocab]: vocab-parallel head
    (r"norm/scale$", P()),                                       # [d_model]
)


def key_to_str(key: Any) -> str | None:
  """One jax tree key as a path component; None for NNX's `.value` wrapper."""
  if isinstance(key, jax.tree_util.DictKey):
    return str(key.key)
  if isinstance(key, jax.tree_util.SequenceKey):
    return str(key.idx)
  if isinstance(key, jax.tree_util.GetAttrKey):
    return None if key.name in ("value", "raw_value", "_raw_value") else key.name
  if isinstance(key, jax.tree_util.FlattenedIndexKey):
    return str(key.key)
  return str(key)


def path_to_str(path: Sequence[Any]) -> str:
  return "/".join(part for part in map(key_to_str, path) if part is not None)


def spec_for(path: str, rules: Iterable[tuple[str, P]] = PARAM_RULES) -> P:
  for pattern, spec in rules:
    if re.search(pattern, path):
      return spec
  return P()


def fit_spec(spec: P, shape: Sequence[int], mesh: Mesh) -> P:
  """Drops mesh axes that do not divide their dimension; pads/truncates to the rank."""
  entries = list(spec)[:len(shape)] + [None] * max(0, len(shape) - len(spec))
  fitted = []
  for dim, entry in zip(shape, entries):
    axes = () if entry is None else (entry if isinstance(entry, tuple) else (entry,))
    kept, product = [], 1
    for axis in axes:
      size = mesh.shape[axis]
      if size > 1 and dim % (product * size) == 0:
        kept.append(axis)
        product *= size
    fitted.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
  while fitted and fitted[-1] is None:
    fitted.pop()
  return P(*fitted)


def tree_shardings(tree: Any, mesh: Mesh, rules: Iterable[tuple[str, P]] = PARAM_RULES) -> Any:
  """NamedSharding for every array leaf of `tree` (arrays or ShapeDtypeStructs)."""
  rules = tuple(rules)

  def leaf_sharding(path, leaf):
    shape = getattr(leaf, "shape", ())
    return NamedSharding(mesh, fit_spec(spec_for(path_to_str(path), rules), shape, mesh))

  return jax.tree_util.tree_map_with_path(leaf_sharding, tree)


def describe(tree: Any, shardings: Any) -> str:
  """One line per leaf: path, shape, dtype, PartitionSpec (for the start-up log)."""
  lines = []
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  specs = jax.tree_util.tree_leaves(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
  for (path, leaf), sharding in zip(leaves, specs):
    lines.append(f"{path_to_str(path):60s} {str(tuple(leaf.shape)):22s} {str(leaf.dtype):9s} {sharding.spec}")
  return "\n".join(lines)
