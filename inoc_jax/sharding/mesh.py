"""The device mesh: axes `data`, `fsdp`, `tensor`.

`data` is pure data parallelism (parameters replicated), `fsdp` shards both the
batch and the parameters/optimizer state (ZeRO-3 style), `tensor` shards heads
and MLP columns. Batches are split over ('data', 'fsdp').

With several slices (TPU multislice / several GPU nodes), `data` spans the slow
DCN links and `fsdp`/`tensor` stay inside a slice on ICI/NVLink.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from inoc_jax.errors import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


def resolve_mesh_shape(sizes: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Fills the single -1 in `sizes` from the device count and validates the product.

  >>> resolve_mesh_shape({'data': -1, 'fsdp': 2, 'tensor': 1}, 8)
  (4, 2, 1)
  """
  unknown = sorted(set(sizes) - set(MESH_AXES))
  if unknown:
    raise ConfigError(f"Unknown mesh axes {unknown}; the mesh axes are {', '.join(MESH_AXES)}.")
  shape = [int(sizes.get(axis, 1)) for axis in MESH_AXES]
  free = [i for i, s in enumerate(shape) if s == -1]
  if len(free) > 1:
    raise ConfigError(f"Mesh {dict(zip(MESH_AXES, shape))} has more than one -1; set all but one axis size.")
  if any(s == 0 or s < -1 for s in shape):
    raise ConfigError(f"Mesh sizes must be positive or -1, got {dict(zip(MESH_AXES, shape))}.")
  known = math.prod(s for s in shape if s != -1)
  if free:
    if num_devices % known:
      raise ConfigError(
          f"Mesh {dict(zip(MESH_AXES, shape))} cannot fill {num_devices} devices: the fixed axes multiply to "
          f"{known}, which does not divide {num_devices}; change the mesh sizes.")
    shape[free[0]] = num_devices // known
  if math.prod(shape) != num_devices:
    raise ConfigError(
        f"Mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices but {num_devices} are available; "
        f"set one axis to -1 or make the sizes multiply to {num_devices}.")
  return tuple(shape)


def make_mesh(sizes: Mapping[str, int], devices: Sequence[jax.Device] | None = None,
              num_slices: int = 1) -> Mesh:
  """Builds the ('data', 'fsdp', 'tensor') mesh with classic GSPMD (Auto) axes.

  Args:
    sizes: axis -> size, one of them may be -1.
    devices: defaults to all devices (every process's, for multi-host runs).
    num_slices: >1 places `data` across slices (DCN) and the other axes within one.
  """
  devices = list(devices if devices is not None else jax.devices())
  shape = resolve_mesh_shape(sizes, len(devices))
  axis_types = (AxisType.Auto,) * len(MESH_AXES)
  if num_slices > 1:
    from jax.experimental import mesh_utils  # pylint: disable=g-import-not-at-top
    data, fsdp, tensor = shape
    if data % num_slices:
      raise ConfigError(f"mesh.data={data} must be a multiple of the {num_slices} slices so data parallelism "
                        "spans slices; raise mesh.data or use fewer slices.")
    device_array = mesh_utils.create_hybrid_device_mesh(
        (data // num_slices, fsdp, tensor), (num_slices, 1, 1), devices=devices)
    return Mesh(device_array, MESH_AXES, axis_types=axis_types)
  if devices == list(jax.devices()):
    return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types)
  return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=axis_types)


def batch_sharding(mesh: Mesh, rank: int = 2) -> NamedSharding:
  """Leading (batch) dimension over ('data', 'fsdp'), the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES, *([None] * (rank - 1))))


def data_parallel_size(mesh: Mesh) -> int:
  return mesh.shape["data"] * mesh.shape["fsdp"]


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())
