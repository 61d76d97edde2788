"""Loading experiment configs (`configs/x.py:preset` + `--config.a.b=v`) and validating them.

Loading reuses ml_collections' absl flag, so a config built here from Python is
exactly what `python -m inoc_jax.train --config=...` builds. `validate` runs
before anything compiles and turns each inconsistency into one sentence.
"""

from __future__ import annotations

from typing import Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from inoc_jax.errors import ConfigError

DTYPES = ("float32", "bfloat16")


def select_preset(presets: dict, preset: str | None, config_file: str):
  """Returns presets[preset] (the first key when preset is empty) or a clear error."""
  name = preset or next(iter(presets))
  if name not in presets:
    raise ConfigError(f"Unknown preset {name!r} for {config_file}; choose one of {', '.join(presets)}.")
  return name, presets[name]


def load_config(config_arg: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """Loads 'configs/x.py[:preset]' and applies overrides like 'optim.lr=1e-4'."""
  flag_values = flags.FlagValues()
  argv = ["inoc_jax", f"--config={config_arg}"] + [f"--config.{o}" for o in overrides]
  # sys_argv lets config_flags register the override flags before parsing them.
  config_flags.DEFINE_config_file("config", None, flag_values=flag_values, lock_config=False, sys_argv=argv)
  try:
    flag_values(argv)
    config = flag_values.config
    getattr(config, "setting")  # file errors surface on first access
  except OSError:
    raise ConfigError(f"Cannot load the config file {config_arg.split(':')[0]!r}; check the path.") from None
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    raise ConfigError(f"Bad config override in {list(overrides)}: {e}; check the field name and type.") from None
  return config


def _check(problems: list[str], condition: bool, message: str) -> None:
  if not condition:
    problems.append(message)


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ConfigError naming every problem found; returns None when the config is usable."""
  from inoc_jax.model.config import PRESETS  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from inoc_jax.model.fused_attention import resolve_impl  # pylint: disable=g-import-not-at-top
  from inoc_jax.sharding.mesh import resolve_mesh_shape  # pylint: disable=g-import-not-at-top

  problems: list[str] = []
  _check(problems, config.model.preset in PRESETS,
         f"model.preset {config.model.preset!r} is unknown (choose one of {', '.join(sorted(PRESETS))})")
  _check(problems, config.model.dtype in DTYPES, f"model.dtype must be one of {DTYPES}, not {config.model.dtype!r}")
  base_dtype = config.model.get("base_dtype", "auto")
  _check(problems, base_dtype in ("auto",) + DTYPES,
         f"model.base_dtype must be auto or one of {DTYPES}, not {base_dtype!r}")
  _check(problems, config.lora.enabled or base_dtype in ("auto", "float32"),
         f"model.base_dtype={base_dtype} sets the dtype of LoRA's frozen base, but lora.enabled=False (full "
         "fine-tuning trains float32 master weights); enable LoRA or leave model.base_dtype=auto")
  base_quant = config.model.get("base_quant", "none")
  _check(problems, base_quant in ("none", "int8", "nf4"),
         f"model.base_quant must be none, int8 or nf4, not {base_quant!r}")
  _check(problems, config.lora.enabled or base_quant == "none",
         f"model.base_quant={base_quant} quantises LoRA's frozen base, but lora.enabled=False (full fine-tuning "
         "trains every weight); enable LoRA or set model.base_quant=none")
  block = config.model.get("quant_block_size", 64)
  _check(problems, isinstance(block, int) and block >= 2 and block % 2 == 0,
         f"model.quant_block_size must be an even integer >= 2, not {block!r}")
  try:  # the model's soft-cap is known once its checkpoint is read; build.attention_impl checks it then
    resolve_impl(config.model.get("attention_impl", "auto"), platform=jax.default_backend(),
                 seq_len=config.data.seq_len, packing=config.data.packing, softcap=None)
  except ConfigError as e:
    problems.append(str(e).rstrip("."))
  try:
    mesh_shape = resolve_mesh_shape(
        {k: config.mesh[k] for k in ("data", "fsdp", "tensor")}, num_devices)
  except ConfigError as e:
    problems.append(str(e).rstrip("."))
    mesh_shape = None
  slices = config.mesh.get("num_slices", 0)
  _check(problems, slices >= 0, f"mesh.num_slices must be >= 0 (0 = detect), got {slices}")
  if mesh_shape is not None and slices > 1:
    _check(problems, mesh_shape[0] % slices == 0,
           f"mesh.data={mesh_shape[0]} must be a multiple of mesh.num_slices={slices} (data parallelism spans "
           "slices); change mesh.data or mesh.num_slices")
  batch, accum = config.data.global_batch_size, config.train.grad_accum_steps
  _check(problems, batch > 0, f"data.global_batch_size must be positive, got {batch}")
  _check(problems, accum > 0, f"train.grad_accum_steps must be positive, got {accum}")
  if batch > 0 and accum > 0:
    _check(problems, batch % accum == 0,
           f"data.global_batch_size={batch} is not divisible by train.grad_accum_steps={accum}")
    if mesh_shape is not None:
      data_parallel = mesh_shape[0] * mesh_shape[1]
      micro = batch // accum if batch % accum == 0 else batch
      _check(problems, micro % data_parallel == 0,
             f"the micro-batch of {micro} rows (global_batch_size / grad_accum_steps) is not divisible by "
             f"the data-parallel size {data_parallel} (mesh data x fsdp); change the batch size or the mesh")
  _check(problems, config.data.seq_len > 1, f"data.seq_len must be at least 2, got {config.data.seq_len}")
  _check(problems, config.train.num_steps >= 0, f"train.num_steps must be >= 0, got {config.train.num_steps}")
  _check(problems, config.train.num_epochs > 0 or config.train.num_steps > 0,
         "set train.num_steps or a positive train.num_epochs")
  _check(problems, config.optim.lr >= 0, f"optim.lr must be >= 0, got {config.optim.lr}")
  _check(problems, config.optim.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {config.optim.warmup_steps}")
  _check(problems, config.loss.chunk_size >= 0, f"loss.chunk_size must be >= 0, got {config.loss.chunk_size}")
  _check(problems, config.train.log_every > 0, f"train.log_every must be positive, got {config.train.log_every}")
  _check(problems, config.checkpoint.save_every >= 0,
         f"checkpoint.save_every must be >= 0 (0 = only at the end), got {config.checkpoint.save_every}")
  _check(problems, config.checkpoint.keep >= 1, f"checkpoint.keep must be at least 1, got {config.checkpoint.keep}")
  from inoc_jax.settings.loading import config_problems  # pylint: disable=g-import-not-at-top
  problems.extend(config_problems(config))
  from inoc_jax.evaluation import eval_config  # pylint: disable=g-import-not-at-top
  from inoc_jax import metrics_wandb  # pylint: disable=g-import-not-at-top
  problems += eval_config.problems(config) + metrics_wandb.problems(config)
  if problems:
    raise ConfigError("Invalid config: " + "; ".join(problems) + ".")
