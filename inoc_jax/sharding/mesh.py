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
          f"{known}, which does not divide {num_devices}; change the mesh sizes{_cpu_hint(known, num_devices)}.")
    shape[free[0]] = num_devices // known
  if math.prod(shape) != num_devices:
    raise ConfigError(
        f"Mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices but {num_devices} are available; "
        f"set one axis to -1 or make the sizes multiply to {num_devices}"
        f"{_cpu_hint(math.prod(shape), num_devices)}.")
  return tuple(shape)


def _cpu_hint(wanted: int, num_devices: int) -> str:
  """How to get more devices on a CPU-only machine, where a mesh is usually tried before a pod run."""
  if wanted <= num_devices or jax.default_backend() != "cpu":
    return ""
  return (f" (on a CPU, simulate {wanted} devices by running with "
          f"XLA_FLAGS=--xla_force_host_platform_device_count={wanted})")


def detected_slices(devices: Sequence[jax.Device]) -> int:
  """Distinct TPU slices among `devices` (their `slice_index`); 1 where devices have none."""
  return len({getattr(d, "slice_index", 0) or 0 for d in devices}) or 1


def slice_groups(devices: Sequence[jax.Device], num_slices: int) -> list[list[jax.Device]]:
  """Splits devices into `num_slices` equal groups joined by the slow network (DCN).

  TPU devices are grouped by `slice_index`. Devices without one (GPU nodes, CPU
  processes) are grouped by host: sorted by (process_index, id) and cut into
  contiguous blocks, so a group is whole processes, i.e. whole nodes when each node
  runs one process or its processes have consecutive ranks (SLURM's block layout).
  A single process may be cut anywhere (emulating slices on fake devices, e.g. compile_check).
  """
  if len(devices) % num_slices:
    raise ConfigError(f"{len(devices)} devices cannot form {num_slices} equal slices; set mesh.num_slices to a "
                      f"divisor of {len(devices)}.")
  found = detected_slices(devices)
  if found > 1:
    if found != num_slices:
      raise ConfigError(f"mesh.num_slices={num_slices} but the devices span {found} TPU slices; set "
                        f"mesh.num_slices={found} (or 0 to detect it).")
    by_slice: dict[int, list] = {}
    for d in devices:
      by_slice.setdefault(d.slice_index, []).append(d)
    return [sorted(by_slice[i], key=lambda d: d.id) for i in sorted(by_slice)]
  ordered = sorted(devices, key=lambda d: (d.process_index, d.id))
  per_group = len(ordered) // num_slices
  groups = [ordered[i * per_group:(i + 1) * per_group] for i in range(num_slices)]
  owner: dict[int, int] = {}
  for index, group in enumerate(groups if len({d.process_index for d in ordered}) > 1 else ()):
    for d in group:
      if owner.setdefault(d.process_index, index) != index:
        raise ConfigError(f"mesh.num_slices={num_slices} would split process {d.process_index}'s devices across "
                          "slices; use a number of slices that divides the number of processes.")
  return groups


def hybrid_device_array(shape: tuple[int, int, int], devices: Sequence[jax.Device], num_slices: int) -> np.ndarray:
  """[data, fsdp, tensor] device array with `data` split across slices, fsdp/tensor inside one."""
  data, fsdp, tensor = shape
  if data % num_slices:
    raise ConfigError(f"mesh.data={data} must be a multiple of the {num_slices} slices so data parallelism "
                      "spans slices; raise mesh.data or use fewer slices.")
  per_slice = (data // num_slices, fsdp, tensor)
  groups = slice_groups(devices, num_slices)
  if groups[0][0].platform == "tpu":
    from jax.experimental import mesh_utils  # pylint: disable=g-import-not-at-top  (physical ICI order)
    return mesh_utils.create_hybrid_device_mesh(per_slice, (num_slices, 1, 1), devices=list(devices))
  return np.concatenate([np.asarray(group, dtype=object).reshape(per_slice) for group in groups], axis=0)


def make_mesh(sizes: Mapping[str, int], devices: Sequence[jax.Device] | None = None,
              num_slices: int = 0) -> Mesh:
  """Builds the ('data', 'fsdp', 'tensor') mesh with classic GSPMD (Auto) axes.

  Args:
    sizes: axis -> size, one of them may be -1.
    devices: defaults to all devices (every process's, for multi-host runs).
    num_slices: >1 places `data` across slices or nodes (DCN) and the other axes
      within one (ICI / NVLink); 0 detects TPU slices from the devices.
  """
  devices = list(devices if devices is not None else jax.devices())
  shape = resolve_mesh_shape(sizes, len(devices))
  axis_types = (AxisType.Auto,) * len(MESH_AXES)
  if num_slices < 0:
    raise ConfigError(f"mesh.num_slices must be >= 0 (0 = detect), got {num_slices}.")
  num_slices = num_slices or detected_slices(devices)
  if num_slices > 1:
    return Mesh(hybrid_device_array(shape, devices, num_slices), MESH_AXES, axis_types=axis_types)
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
