"""Run a setting's arms over seeds: `python -m inoc_jax.sweep --config=configs/X.py[:preset] --workdir=SWEEP_DIR`.

The config's `sweep` block says what to run (see config_defaults.py):
  sweep.arms         'Label: field=value; field=value' per arm; () = Neutral, every registered IP and
                     control, and the setting's skyline (PTST is the Neutral arm under the PTST eval prompt);
  sweep.seeds        one run per arm and seed;
  sweep.base_preset  optional preset of the same file trained first per seed (the organism's stage 1);
                     it is exported as an HF folder and every arm of that seed fine-tunes from it
                     (sweep.base_overrides: 'field=value; ...' for the base runs only);
  sweep.initial_eval evaluate the initial model (the base, else model.checkpoint) per seed or once.
Command-line `--config.a.b=v` overrides apply to every run (arm overrides win).

The sweep folder's layout (sweep.json, base/, initial/, runs/<arm>-seed<k>/ with run.json and, when
finished, results.json and summary.json) is inoc_jax/runtime/layout.py's SweepLayout; `python -m
inoc_jax.report SWEEP_DIR` reads it through the same class, on a local disk or gs://.

Runs are ordered seed-major (seed, then arm, as listed). `--num_shards=K --shard_index=I`
runs the units whose index u satisfies u % K == I, where a unit is one run, or,
when there is a base preset, one seed (its base and all its arms). Finished runs
(summary.json present) are skipped and interrupted ones resume from their
checkpoints, so re-running the same command continues a sweep.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import sys
import time
from typing import Sequence

from absl import app, flags

from inoc_jax import cli, config_lib, settings
from inoc_jax.checkpoint.preemption import TrainingInterrupted
from inoc_jax.errors import ConfigError, InocJaxError
from inoc_jax.runtime import storage
from inoc_jax.runtime.layout import RunLayout, SweepLayout

log = logging.getLogger(__name__)


INITIAL_EVAL_MODES = ("every_seed", "first_seed", "none")


@dataclasses.dataclass(frozen=True)
class Arm:
  label: str
  overrides: tuple[str, ...]

  @property
  def slug(self) -> str:
    return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")


def parse_arm(spec: str) -> Arm:
  """'IP Behave Correct: data.train_prompt=ip_behave_correct; optim.lr=1e-4' -> Arm."""
  head = spec.split("=", 1)[0]  # the label may contain ':' (e.g. "IP Note: Correct"); values may too
  cut = head.rfind(":")
  label, rest = (spec[:cut], spec[cut + 1:]) if cut >= 0 else ("", "")
  if cut < 0 or not label.strip():
    raise ConfigError(f"sweep.arms entry {spec!r} must look like 'Label: field=value; field=value'.")
  overrides = tuple(o.strip() for o in rest.split(";") if o.strip())
  for override in overrides:
    if "=" not in override:
      raise ConfigError(f"sweep.arms entry {spec!r}: {override!r} is not 'field=value'.")
  return Arm(label.strip(), overrides)


ARM_KINDS = ("inoculation", "unrelated_control", "wrong_concept_control", "placebo_control")


def default_arms(config) -> list[str]:
  """sweep.arms when the config lists none: Neutral, every registered IP and control, the skyline.

  PTST needs no arm of its own: it is the Neutral arm under the setting's PTST
  eval prompt (row "Neutral / <PTST prompt>"), which the default eval prompts include.
  """
  return settings.get(config.setting).default_arms(config, ARM_KINDS)


@dataclasses.dataclass(frozen=True)
class Plan:
  config_arg: str                # 'configs/x.py[:preset]'
  overrides: tuple[str, ...]     # command-line overrides, applied to every run
  arms: tuple[Arm, ...]
  seeds: tuple[int, ...]
  base_preset: str
  base_overrides: tuple[str, ...]
  initial_eval: str
  setting: str

  def units(self) -> list[list[tuple[int, Arm]]]:
    runs = [(seed, arm) for seed in self.seeds for arm in self.arms]
    if self.base_preset:
      return [[r for r in runs if r[0] == seed] for seed in self.seeds]
    return [[r] for r in runs]

  def run_config(self, seed: int, arm: Arm | None, preset: str | None = None, extra: Sequence[str] = ()):
    config_file = self.config_arg.split(":")[0]
    arg = f"{config_file}:{preset}" if preset else self.config_arg
    overrides = [*self.overrides, *(arm.overrides if arm else ()), f"seed={seed}", *extra]
    return config_lib.load_config(arg, overrides)


def make_plan(config_arg: str, overrides: Sequence[str], seeds: Sequence[int] | None = None,
              arm_labels: Sequence[str] | None = None) -> Plan:
  config = config_lib.load_config(config_arg, overrides)
  arms = tuple(parse_arm(spec) for spec in (config.sweep.arms or default_arms(config)))
  slugs = [a.slug for a in arms]
  if len(set(slugs)) != len(slugs):
    raise ConfigError(f"sweep.arms labels must differ (after lower-casing): {[a.label for a in arms]}.")
  if arm_labels:
    unknown = set(arm_labels) - {a.label for a in arms}
    if unknown:
      raise ConfigError(f"--arms {sorted(unknown)} not in sweep.arms ({', '.join(a.label for a in arms)}).")
    arms = tuple(a for a in arms if a.label in arm_labels)
  seeds = tuple(int(s) for s in (seeds if seeds is not None else config.sweep.seeds))
  if not seeds or len(set(seeds)) != len(seeds):
    raise ConfigError(f"sweep.seeds must be distinct and non-empty, got {list(seeds)}.")
  if config.sweep.initial_eval not in INITIAL_EVAL_MODES:
    raise ConfigError(f"sweep.initial_eval must be one of {', '.join(INITIAL_EVAL_MODES)}, "
                      f"got {config.sweep.initial_eval!r}.")
  base_overrides = parse_arm(f"base: {config.sweep.base_overrides}").overrides
  plan = Plan(config_arg, tuple(overrides), arms, seeds, config.sweep.base_preset, base_overrides,
              config.sweep.initial_eval, config.setting)
  for seed in seeds[:1]:
    for arm in arms:  # every arm's config must load and validate before anything trains
      config_lib.validate(plan.run_config(seed, arm), _device_count())
  return plan


def _device_count() -> int:
  import jax  # pylint: disable=g-import-not-at-top
  return jax.device_count()


def _is_writer() -> bool:
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_index() == 0


def _load_average() -> float | None:
  """The 1-minute load average (None where the OS has none): run times mean little without it."""
  try:
    return round(os.getloadavg()[0], 2)
  except OSError:
    return None


def _write_json(path: str, value) -> None:
  if _is_writer():
    storage.write_text(path, storage.dumps_json(value, indent=2) + "\n")


def base_model(plan: Plan, sweep_dir: str, seed: int) -> str:
  """Trains (or reuses) the seed's base run and returns its exported HF folder."""
  from inoc_jax import trainer  # pylint: disable=g-import-not-at-top
  from inoc_jax.export import export  # pylint: disable=g-import-not-at-top
  layout = SweepLayout(sweep_dir)
  base_dir, hf_dir = layout.base_dir(seed), layout.base_export(seed)
  if storage.exists(storage.join(hf_dir, "config.json")):
    return hf_dir
  config = plan.run_config(seed, None, preset=plan.base_preset, extra=plan.base_overrides)
  log.info("sweep: base model for seed %d (preset %r) in %s", seed, plan.base_preset, base_dir)
  summary = trainer.train_and_evaluate(config, base_dir)
  log.info("sweep: base seed %d: %s", seed, summary.line())
  export(base_dir, hf_dir)
  return hf_dir


def initial_model_source(plan: Plan, seed: int, base_dir: str | None) -> str | None:
  if base_dir:
    return base_dir
  return plan.run_config(seed, plan.arms[0]).model.checkpoint or None


def evaluate_initial(plan: Plan, sweep_dir: str, seed: int, source: str) -> None:
  """The initial model under the setting's eval prompts -> initial/seed<k>/results.json (once)."""
  out_dir = SweepLayout(sweep_dir).initial_dir(seed)
  if storage.exists(storage.join(out_dir, "results.json")):
    return
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from inoc_jax.evaluation.harness import evaluate_params  # pylint: disable=g-import-not-at-top
  from inoc_jax.weights.pretrained import open_pretrained  # pylint: disable=g-import-not-at-top
  config = plan.run_config(seed, plan.arms[0], extra=[f"model.checkpoint={source}"])
  model = open_pretrained(source).load_model()
  graphdef, state = nnx.split(model)
  log.info("sweep: evaluating the initial model (%s) for seed %d", source, seed)
  evaluate_params(config, graphdef, state, workdir=out_dir, checkpoint_id=source, step=0)


def run_arm(plan: Plan, sweep_dir: str, seed: int, arm: Arm, base_dir: str | None) -> dict:
  """One training run in runs/<arm>-seed<k>; returns its run.json record."""
  from inoc_jax import trainer  # pylint: disable=g-import-not-at-top
  run_dir = SweepLayout(sweep_dir).run_dir(arm.slug, seed)
  run = RunLayout(run_dir)
  record = {"arm": arm.label, "seed": seed, "overrides": list(arm.overrides), "base": base_dir or ""}
  if storage.exists(run.summary):
    return {**record, "status": "finished", "skipped": True}
  extra = [f"model.checkpoint={base_dir}"] if base_dir else []
  # the sweep evaluates the initial model once (initial/seed<k>), not once per run
  config = plan.run_config(seed, arm, extra=[*extra, "eval.at_end=True", "eval.initial=False"])
  record["train_prompt"] = config.data.train_prompt
  if config.log.wandb_project:  # one W&B group per sweep, one run per arm and seed
    config.log.wandb_group = config.log.wandb_group or sweep_dir.rstrip("/").rsplit("/", 1)[-1]
    config.log.wandb_name = config.log.wandb_name or f"{arm.slug}-seed{seed}"
  storage.makedirs(run_dir)
  record.update(host=socket.gethostname(), cpus=os.cpu_count(), load_average_at_start=_load_average())
  _write_json(SweepLayout.run_record(run_dir), {**record, "status": "running", "started": time.time()})
  summary = trainer.train_and_evaluate(config, run_dir)
  results = storage.read_text(run.eval_results("final"))
  if _is_writer():
    storage.write_text(SweepLayout.run_results(run_dir), results)
  # wall_seconds covers every segment of a resumed run; the load averages are this last segment's
  record.update(status="finished", wall_seconds=summary.wall_seconds, final_loss=summary.final_loss,
                load_average_at_end=_load_average())
  _write_json(SweepLayout.run_record(run_dir), record)
  return record


def run_sweep(plan: Plan, sweep_dir: str, num_shards: int = 1, shard_index: int = 0) -> list[dict]:
  """Runs this shard's units one after another; a failed run is recorded and the sweep goes on.

  A run stopped by a signal (TrainingInterrupted: SIGTERM / SIGINT, its checkpoint saved) stops the
  whole sweep: the signal was meant for the sweep, and rerunning the command resumes that run.
  """
  if num_shards < 1 or not 0 <= shard_index < num_shards:
    raise ConfigError(f"--shard_index must be in [0, --num_shards={num_shards}), got {shard_index}.")
  storage.makedirs(sweep_dir)
  _write_json(SweepLayout(sweep_dir).sweep_json, {
      "setting": plan.setting, "config": plan.config_arg, "overrides": list(plan.overrides),
      "arms": [{"name": a.label, "overrides": list(a.overrides)} for a in plan.arms], "seeds": list(plan.seeds),
      "base_preset": plan.base_preset})
  records = []
  for index, unit in enumerate(plan.units()):
    if index % num_shards != shard_index:
      continue
    seed = unit[0][0]
    try:
      base_dir = base_model(plan, sweep_dir, seed) if plan.base_preset else None
    except InocJaxError as e:
      log.error("sweep: base model for seed %d failed: %s", seed, e)
      records.extend({"arm": arm.label, "seed": s, "status": "failed", "error": f"base: {e}"} for s, arm in unit)
      continue
    evaluate_now = plan.initial_eval == "every_seed" or (plan.initial_eval == "first_seed" and seed == plan.seeds[0])
    source = initial_model_source(plan, seed, base_dir) if evaluate_now else None
    if source:
      evaluate_initial(plan, sweep_dir, seed, source)
    for seed, arm in unit:
      try:
        record = run_arm(plan, sweep_dir, seed, arm, base_dir)
      except TrainingInterrupted:
        raise
      except InocJaxError as e:
        log.error("sweep: %s seed %d failed: %s", arm.label, seed, e)
        record = {"arm": arm.label, "seed": seed, "status": "failed", "error": str(e)}
      records.append(record)
      log.info("sweep: %s seed %d: %s", arm.label, seed, record["status"])
  return records


def command_line_overrides(argv: Sequence[str]) -> list[str]:
  """The `--config.a.b=v` arguments, as 'a.b=v'."""
  return [a[len("--config."):] for a in argv if a.startswith("--config.")]


def main(argv):
  del argv
  if not flags.FLAGS.workdir:
    raise ConfigError("--workdir is required: the sweep directory (re-use it to resume).")
  plan = make_plan(cli.config_argument(), command_line_overrides(sys.argv[1:]),
                   seeds=[int(s) for s in flags.FLAGS.seeds] if flags.FLAGS.seeds else None, arm_labels=flags.FLAGS.arms)
  sweep_dir = storage.resolve(flags.FLAGS.workdir)
  try:
    records = run_sweep(plan, sweep_dir, flags.FLAGS.num_shards, flags.FLAGS.shard_index)
  except TrainingInterrupted as e:
    print(f"sweep stopped by {e.signal_name} during a run (checkpoint saved at step {e.step}); rerun the same "
          "command to resume it and the runs after it.", file=sys.stderr, flush=True)
    sys.exit(e.exit_code)
  failed = [r for r in records if r["status"] == "failed"]
  print(f"sweep: {len(records) - len(failed)} runs finished, {len(failed)} failed, in {sweep_dir}")
  for r in failed:
    print(f"  FAILED {r['arm']} seed {r['seed']}: {r['error']}")
  if failed:
    sys.exit(1)
  print(f"report: python -m inoc_jax.report {sweep_dir}")


def define_flags() -> None:
  """The CLI's flags (defined only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_string("workdir", None, "Sweep directory (local or gs://).")
  flags.DEFINE_integer("num_shards", 1, "Split the sweep's units over this many hosts / VMs.")
  flags.DEFINE_integer("shard_index", 0, "Which shard this process runs (0-based).")
  flags.DEFINE_list("seeds", None, "Override sweep.seeds, e.g. --seeds=0,1,2.")
  flags.DEFINE_list("arms", None, "Run only these arm labels (default: all of sweep.arms).")


if __name__ == "__main__":
  define_flags()
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file("config", None, "Experiment config file, optionally ':preset'.", lock_config=False)
  flags.mark_flags_as_required(["config"])
  app.run(cli.friendly(main), flags_parser=cli.parse_flags)
