"""The compile check's target: the mesh and device count it compiles for (no JAX import)."""

from __future__ import annotations

import math

from inoc_jax.errors import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")  # as inoc_jax.sharding.mesh, without importing jax before the re-exec


def parse_mesh(text: str) -> dict[str, int]:
  """'data:16,fsdp:16,tensor:1' -> {'data': 16, 'fsdp': 16, 'tensor': 1}; axes not named are 1."""
  sizes = {axis: 1 for axis in MESH_AXES}
  for part in filter(None, (p.strip() for p in text.split(","))):
    name, sep, value = part.partition(":")
    if not sep or name not in MESH_AXES:
      raise ConfigError(f"--mesh entry {part!r} is not 'axis:size' with axis one of {', '.join(MESH_AXES)}; "
                        "write e.g. --mesh=data:2,fsdp:8,tensor:1.")
    try:
      sizes[name] = int(value)
    except ValueError:
      raise ConfigError(f"--mesh size {value!r} for {name} is not an integer; write e.g. {name}:8.") from None
  return sizes


def target_platform(accelerator: str | None) -> str:
  """'tpu' for a TPU generation (v4, v5e, ...), 'gpu' for an a100/h100/h200, 'cpu' when none is named: the
  platform whose attention kernel `model.attention_impl=auto` would pick on the target."""
  if not accelerator:
    return "cpu"
  return "tpu" if accelerator.startswith("v") else "gpu"


def target_device_count(mesh_sizes: dict[str, int], devices: int | None) -> int:
  product = math.prod(s for s in mesh_sizes.values() if s != -1)
  if devices is not None:
    if devices <= 0:
      raise ConfigError(f"--devices must be positive, got {devices}.")
    return devices
  if -1 in mesh_sizes.values():
    raise ConfigError(f"The mesh {mesh_sizes} has a -1 axis; give --devices=N or set every axis size.")
  return product
