"""Evaluate a checkpoint: `python -m inoc_jax.evaluate --config=configs/X.py --checkpoint=PATH [--eval_prompt=X]`.

--checkpoint is a training run (workdir, checkpoints/ or a step folder), an HF
folder, a .gguf file, a Hub id, a known name (smollm2-135m-instruct) or
`random[:SEED]`. Each --eval_prompt is a prompt-registry name, literal text or
`neutral`; without any, the setting's defaults (neutral, PTST, compliance) are
used. Every config field can be overridden, e.g. `--config.eval.max_examples=20
--config.eval.temperature=0`, or with `--set eval.max_examples=20` (which also
works without --config, on a training run's own config). Writes
<output_dir>/results.json and prints a table.
"""

from __future__ import annotations

import datetime
import logging
import os

from absl import app, flags
from ml_collections import config_flags

from inoc_jax import cli
from inoc_jax.runtime import layout
from inoc_jax.runtime.layout import RunLayout

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file, optionally ':preset' (default: "
                                          "the training run's own config).", lock_config=False)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run workdir / checkpoint folder, HF folder, .gguf, Hub id, "
                                  "known name or random[:SEED].")
_EVAL_PROMPTS = flags.DEFINE_multi_string("eval_prompt", None, "Eval-time prompt (registry name, text or "
                                          "'neutral'); repeat for several. Default: eval.prompts or the setting's.")
_SET = flags.DEFINE_multi_string("set", None, "Config override 'a.b=value' applied to the config in use (also to a "
                                  "training run's own config, where --config.a.b cannot be used).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where results.json goes (default: <run>/eval/checkpoint_<step> "
                                  "for training runs, else runs/eval-<setting>-<time>).")

log = logging.getLogger("inoc_jax")


def default_output_dir(config, checkpoint: str, step: int | None) -> str:
  if step is not None:  # a training run: <workdir>/eval/checkpoint_<step>
    root = os.path.normpath(checkpoint)
    while os.path.basename(root).isdigit() or os.path.basename(root) == layout.CHECKPOINTS:
      root = os.path.dirname(root)
    return RunLayout(root).eval_dir(f"checkpoint_{step}")
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  return os.path.join("runs", f"eval-{config.setting}-{stamp}")


def apply_overrides(config, overrides) -> None:
  """'eval.max_examples=20' -> config.eval.max_examples = 20 (value parsed as a Python literal, else text)."""
  import ast  # pylint: disable=g-import-not-at-top
  from inoc_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  for item in overrides or ():
    key, sep, text = item.partition("=")
    if not sep:
      raise ConfigError(f"--set {item!r} is not of the form a.b=value.")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    *parents, leaf = key.split(".")
    node = config
    try:
      for part in parents:
        node = node[part]
      current = node[leaf]
    except (KeyError, AttributeError):
      raise ConfigError(f"--set {item!r}: the config has no field {key!r}.") from None
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    node[leaf] = value


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  from inoc_jax import config_lib  # pylint: disable=g-import-not-at-top
  from inoc_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from inoc_jax.evaluation import harness, model_loading  # pylint: disable=g-import-not-at-top
  from inoc_jax.sharding.mesh import make_mesh  # pylint: disable=g-import-not-at-top

  from inoc_jax.runtime import storage  # pylint: disable=g-import-not-at-top
  checkpoint = storage.resolve_if_local(_CHECKPOINT.value)
  is_run = model_loading.is_training_checkpoint(checkpoint)
  config = _CONFIG.value
  if config is None and not is_run:
    raise ConfigError("--config is required unless --checkpoint is a training run (whose config is reused).")
  mesh = None
  if config is not None:
    apply_overrides(config, _SET.value)
    config_lib.validate(config, jax.device_count())
    mesh = make_mesh({k: config.mesh[k] for k in ("data", "fsdp", "tensor")}, num_slices=config.mesh.num_slices)
    if not is_run and not checkpoint.startswith("random"):
      config.model.checkpoint = checkpoint  # so data.tokenizer='auto' reads this checkpoint's tokenizer
  loaded = model_loading.load_model(config if config is not None else _placeholder(), checkpoint, mesh)
  if config is None:
    config = loaded.run_config
    from inoc_jax.evaluation.eval_config import add_eval_defaults  # pylint: disable=g-import-not-at-top
    add_eval_defaults(config)
    apply_overrides(config, _SET.value)
    sample_on_local_devices(config)
    config_lib.validate(config, jax.device_count())
  elif loaded.run_config is not None and loaded.run_config.get("setting") != config.setting:
    log.warning("the checkpoint was trained on %r but is evaluated on %r", loaded.run_config.get("setting"),
                config.setting)
  prompts = None
  if _EVAL_PROMPTS.value:
    prompts = ["" if p.lower() == "neutral" else p for p in _EVAL_PROMPTS.value]
  output_dir = storage.resolve(_OUTPUT_DIR.value) or default_output_dir(config, checkpoint, loaded.step)
  harness.evaluate_params(config, loaded.graphdef, *loaded.states, workdir=output_dir, mesh=mesh, prompts=prompts,
                          checkpoint_id=loaded.name, step=loaded.step)
  print(f"results: {os.path.join(output_dir, 'results.json')}")


def sample_on_local_devices(config) -> None:
  """A training run's mesh (e.g. fsdp=8 on a pod) need not exist where it is evaluated: sampling then uses
  every local device on the data axis, as the sampler does by default."""
  import jax  # pylint: disable=g-import-not-at-top
  from inoc_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from inoc_jax.sharding.mesh import resolve_mesh_shape  # pylint: disable=g-import-not-at-top
  try:
    resolve_mesh_shape({k: config.mesh[k] for k in ("data", "fsdp", "tensor")}, jax.device_count())
  except ConfigError:
    log.info("the run's mesh %s does not fit the %d local devices; sampling with data=-1",
             dict(config.mesh), jax.device_count())
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = -1, 1, 1
    config.mesh.num_slices = 0


def _placeholder():
  from inoc_jax import config_defaults  # pylint: disable=g-import-not-at-top
  return config_defaults.base_config()


if __name__ == "__main__":
  flags.mark_flags_as_required(["checkpoint"])
  app.run(cli.friendly(main), flags_parser=cli.parse_flags)
