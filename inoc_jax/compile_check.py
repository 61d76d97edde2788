"""Compile the train step for a target mesh on fake CPU devices, before paying for accelerators.

  python -m inoc_jax.compile_check --config=configs/sycophancy.py:tiny \
      --config.model.preset=qwen2-7b --config.model.dtype=bfloat16 --config.model.remat=full \
      --config.data.global_batch_size=16 --mesh=data:1,fsdp:16,tensor:1 --accelerator=v5e

The command re-executes itself with `--xla_force_host_platform_device_count=N`,
builds the train state abstractly (no allocation), lowers and compiles the
exact step `inoc_jax.train` would run, and prints per-device memory from the
compiled executable next to the params + grads + Adam arithmetic, plus every
sharding rule the mesh defeats. Exit status: 0 ok, 1 does not fit in
`--hbm_gib`/`--accelerator`, 2 a config, mesh or sharding error (one sentence).

CPU compilation is a proxy for the TPU/GPU compiler: the XLA flags below make
the CPU scheduler release collective buffers as a TPU schedule would (see
BUILD_NOTES.md, "Ahead-of-time checks"); argument sizes are exact, temporaries
are an estimate.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from inoc_jax import cli
from inoc_jax.aot.target import parse_mesh, target_device_count, target_platform
from inoc_jax.errors import ConfigError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file, optionally ':preset'.",
                                          lock_config=False)
_MESH = flags.DEFINE_string("mesh", None, "Target mesh, e.g. 'data:16,fsdp:16,tensor:1' (axes left out are 1; "
                            "one axis may be -1 with --devices). Default: the config's mesh.")
_DEVICES = flags.DEFINE_integer("devices", None, "Fake devices to compile for (default: the mesh's product).")
_ACCELERATOR = flags.DEFINE_string("accelerator", None, "Check the peak against this chip's HBM: "
                                   "v4, v5e, v5p, v6e, a100-40gb, a100-80gb, h100, h200.")
_HBM_GIB = flags.DEFINE_float("hbm_gib", None, "Check the peak against this many GiB per device.")
_STRICT = flags.DEFINE_boolean("strict", False, "Treat a sharding rule the mesh cannot apply, or a tensor XLA "
                               "can only reshard by replicating it, as an error.")
_JSON = flags.DEFINE_string("json", None, "Also write the report as JSON to this path.")

_CHILD_ENV = "INOC_COMPILE_CHECK_DEVICES"
# CPU has no reduce-scatter and by default schedules collectives for concurrency and combines
# all-reduces; each of these keeps full-size gradients alive at once, which no TPU/GPU schedule does.
CPU_PROXY_XLA_FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",
                       "--xla_disable_hlo_passes=cpu-all-reduce-combiner")


def _reexec_with_fake_devices(num_devices: int) -> None:
  """Replaces this process with one that sees `num_devices` fake CPU devices (jax not yet imported)."""
  env = dict(os.environ)
  xla_flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform")]
  env["XLA_FLAGS"] = " ".join(xla_flags + [f"--xla_force_host_platform_device_count={num_devices}",
                                           *CPU_PROXY_XLA_FLAGS])
  env["JAX_PLATFORMS"] = "cpu"
  env[_CHILD_ENV] = str(num_devices)
  sys.stdout.flush()
  os.execve(sys.executable, [sys.executable, "-m", "inoc_jax.compile_check", *sys.argv[1:]], env)


def _hbm_gib() -> float | None:
  from inoc_jax.aot.report import ACCELERATOR_HBM_GIB  # pylint: disable=g-import-not-at-top
  if _HBM_GIB.value:
    return _HBM_GIB.value
  if _ACCELERATOR.value:
    if _ACCELERATOR.value not in ACCELERATOR_HBM_GIB:
      raise ConfigError(f"--accelerator {_ACCELERATOR.value!r} is unknown; choose one of "
                        f"{', '.join(ACCELERATOR_HBM_GIB)} or give --hbm_gib.")
    return ACCELERATOR_HBM_GIB[_ACCELERATOR.value]
  return None


def main(argv) -> int:
  del argv
  config = _CONFIG.value
  if _MESH.value:
    config.mesh.update(parse_mesh(_MESH.value))
  sizes = {axis: config.mesh[axis] for axis in ("data", "fsdp", "tensor")}
  num_devices = target_device_count(sizes, _DEVICES.value)
  hbm = _hbm_gib()
  if os.environ.get(_CHILD_ENV) != str(num_devices):
    _reexec_with_fake_devices(num_devices)
  return run_check(config, num_devices, hbm)


def run_check(config, num_devices: int, hbm_gib: float | None) -> int:
  import jax  # pylint: disable=g-import-not-at-top
  from inoc_jax import config_lib  # pylint: disable=g-import-not-at-top
  from inoc_jax.aot import lowering, memory, report as report_lib, sharding_audit  # pylint: disable=g-import-not-at-top
  from inoc_jax.sharding.mesh import make_mesh  # pylint: disable=g-import-not-at-top
  from inoc_jax.training.train_state import param_count, total_param_count  # pylint: disable=g-import-not-at-top

  if jax.device_count() != num_devices:
    raise ConfigError(f"Expected {num_devices} fake CPU devices but JAX sees {jax.device_count()}; unset "
                      "JAX_PLATFORMS/XLA_FLAGS overrides and rerun.")
  config_lib.validate(config, num_devices)
  mesh = make_mesh({k: config.mesh[k] for k in ("data", "fsdp", "tensor")}, num_slices=config.mesh.num_slices)
  abstract = lowering.abstract_step(config, mesh, platform=target_platform(_ACCELERATOR.value))
  fallbacks = sharding_audit.rule_fallbacks({"params": abstract.state.params, "frozen": abstract.state.frozen},
                                            mesh)
  if fallbacks and _STRICT.value:
    raise ConfigError("Sharding error: " + fallbacks[0].sentence() + (
        f" ({len(fallbacks) - 1} more listed without --strict)." if len(fallbacks) > 1 else "."))
  try:
    compiled = lowering.compile_step(abstract)
  except Exception as e:  # XLA reports partitioning failures as assorted runtime errors
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ConfigError(f"XLA could not compile the train step for mesh {dict(mesh.shape)}: {first_line}") from None
  shards = mesh.shape["fsdp"] * mesh.shape["tensor"]
  report = report_lib.build_report(
      config=config, mesh_shape=dict(mesh.shape), num_devices=num_devices,
      compiled=memory.compiled_memory(compiled.executable, abstract.state, abstract.batch),
      arithmetic=memory.state_arithmetic(abstract.state, shards), fallbacks=fallbacks,
      num_params=total_param_count(abstract.state, abstract.arch),
      num_trainable=param_count(abstract.state.params), lower_seconds=compiled.lower_seconds,
      compile_seconds=compiled.compile_seconds, hbm_gib=hbm_gib, involuntary_remats=compiled.involuntary_remats,
      attention=abstract.attention)
  print(report_lib.render(report), flush=True)
  if _JSON.value:
    with open(_JSON.value, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=2)
  if compiled.involuntary_remats and _STRICT.value:
    raise ConfigError(f"Sharding error: XLA replicates {len(compiled.involuntary_remats)} tensors to reshard them "
                      f"(first: {compiled.involuntary_remats[0]}); add activation constraints "
                      "(inoc_jax/sharding/activations.py) or change the mesh.")
  return 0 if report.get("fits", True) else 1


def _entry(argv):
  sys.exit(main(argv))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(cli.friendly(_entry, distributed=False), flags_parser=cli.parse_flags)
