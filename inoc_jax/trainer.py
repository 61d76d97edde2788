"""The training loop: config -> data -> sharded state -> steps -> logs.

`train_and_evaluate(config, workdir)` is the whole run; the CLI in train.py
only parses flags and calls it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from tqdm import tqdm

from inoc_jax import config_lib
from inoc_jax.checkpoint.preemption import StopSignals
from inoc_jax.checkpoint.progress import (RunProgress, check_resume, data_fingerprint, finite_or_none,
                                          resume_changes)
from inoc_jax.checkpoint.resume import start_state
from inoc_jax.checkpoint.run import RunCheckpoints
from inoc_jax.data import pipeline
from inoc_jax.data.encoders import make_encoder
from inoc_jax.errors import ConfigError, DataError
from inoc_jax.evaluation import harness
from inoc_jax.evaluation.scorers.base import flatten
from inoc_jax.metrics_writer import MetricsWriter
from inoc_jax.model import build, config as model_config
from inoc_jax.runtime import storage
from inoc_jax.runtime.console import progress_interval
from inoc_jax.runtime.layout import RunLayout
from inoc_jax.runtime.workdir_lock import WorkdirLock
from inoc_jax.settings.loading import load_setting, train_prompt_pool
from inoc_jax.sharding import rules
from inoc_jax.sharding.mesh import batch_sharding, make_mesh
from inoc_jax.training.masking import supervised_token_counts
from inoc_jax.training.optimizer import make_optimizer
from inoc_jax.training.train_state import param_count, total_param_count
from inoc_jax.training.train_step import BATCH_KEYS, EvalStep, StepOptions, TrainStep
from inoc_jax.weights.pretrained import open_pretrained

log = logging.getLogger("inoc_jax")

def sampling_model(config: ml_collections.ConfigDict, arch: model_config.ModelConfig, graphdef: nnx.GraphDef,
                   state: Any, mesh) -> tuple[nnx.GraphDef, tuple]:
  """(graphdef, states) for the sampler: LoRA merged (model/build.py); without LoRA the train state as is."""
  if not config.lora.enabled:
    return graphdef, (state.params, state.frozen)
  plain_graphdef, merged = build.merged_for_sampling(graphdef, (state.params, state.frozen), arch, mesh,
                                                     build.compute_dtype(config.model.dtype))
  return plain_graphdef, (merged,)


def fixed_batches(examples, rows: int, seq_len: int):
  """Every example once, in order, padded to full batches with empty rows (segment 0)."""
  iterator = pipeline.BatchIterator(examples, global_batch_size=rows, seq_len=seq_len, seed=0, shuffle=False)
  for start in range(0, len(examples), rows):
    batch = next(iterator)
    real = min(rows, len(examples) - start)
    for key in BATCH_KEYS:
      batch[key][real:] = 0
    yield batch


@dataclasses.dataclass
class RunSummary:
  steps: int
  final_loss: float | None        # None: unknown (e.g. a checkpoint from before these counters)
  first_loss: float | None        # loss of optimizer step 1, over every resumed segment
  heldout_loss: float | None
  tokens_per_second: float       # over every segment's timed steps
  wall_seconds: float             # this invocation
  workdir: str
  eval_metrics: dict | None = None  # {eval prompt: metrics} when eval.at_end
  initial_eval_metrics: dict | None = None  # the same for the model before step 1, when eval.initial

  def line(self) -> str:
    def number(value):
      return "n/a" if value is None else f"{value:.4f}"
    return (f"Finished {self.steps} steps in {self.wall_seconds:.0f}s: train loss {number(self.first_loss)} -> "
            f"{number(self.final_loss)}, held-out loss {number(self.heldout_loss)}, "
            f"{self.tokens_per_second:.0f} tokens/s; "
            f"outputs in {self.workdir}")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> RunSummary:
  """The whole run in `workdir` (created; locked against a second run for as long as this one lives)."""
  start_time = time.time()
  workdir = storage.resolve(workdir)
  config_lib.validate(config, jax.device_count())
  storage.make_workdir(workdir)
  with WorkdirLock(workdir, enabled=jax.process_index() == 0):
    return _train_and_evaluate(config, workdir, start_time)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, start_time: float) -> RunSummary:
  pretrained = open_pretrained(config.model.checkpoint) if config.model.checkpoint else None
  arch = pretrained.model_config if pretrained else model_config.get_preset(config.model.preset)
  if pretrained:
    log.info("model: architecture from %s (model.preset %r ignored)", pretrained.source.path, config.model.preset)
  build.lora_config(config)  # validates the LoRA block before anything compiles
  mesh = make_mesh({k: config.mesh[k] for k in ("data", "fsdp", "tensor")}, num_slices=config.mesh.num_slices)

  encoder = make_encoder(config)
  if encoder.tokenizer.vocab_size > arch.vocab_size:
    model_name = (f"model.checkpoint {config.model.checkpoint!r}" if pretrained
                  else f"model.preset {config.model.preset!r}")
    raise ConfigError(f"The tokenizer has {encoder.tokenizer.vocab_size} tokens but {model_name} has only "
                      f"{arch.vocab_size} embeddings; pick a matching tokenizer or model.")
  data = load_setting(config)
  truncation = config.data.get("truncation", "drop")
  train_examples, drops = pipeline.tokenize_examples(data.train, encoder, config.data.seq_len, config.loss.train_on,
                                                     truncation)
  heldout_examples, heldout_drops = pipeline.tokenize_examples(data.heldout, encoder, config.data.seq_len,
                                                               config.loss.train_on, truncation)
  log.info("data: %d train examples (%s), %d held-out (%s)", len(train_examples), drops.summary(),
           len(heldout_examples), heldout_drops.summary())
  if not train_examples:
    raise DataError(f"No training example fits data.seq_len={config.data.seq_len} with a supervised token "
                    f"({drops.summary()}); raise data.seq_len.")
  iterator = pipeline.BatchIterator(
      train_examples, global_batch_size=config.data.global_batch_size, seq_len=config.data.seq_len,
      seed=config.seed, shuffle=config.data.shuffle, packing=config.data.packing,
      process_index=jax.process_index(), process_count=jax.process_count(),
      max_examples_per_row=config.data.get("max_examples_per_row", 0))
  num_steps = config.train.num_steps or max(1, math.ceil(config.train.num_epochs * iterator.batches_per_epoch()))

  spec = build.training_spec(config, arch)
  tx, schedule = make_optimizer(config.optim, num_steps)
  checkpoints = RunCheckpoints(config, workdir, arch, build.lora_config(config))
  start = start_state(spec, tx, mesh, config.seed, checkpoints.checkpointer,
                      load_base=(lambda: pretrained.load(spec, mesh)) if pretrained else None,
                      base_name=config.model.checkpoint or "the seed")
  graphdef, state, shardings = start.graphdef, start.state, start.shardings
  progress = record_start(config, workdir, start, data_fingerprint(train_examples))
  checkpoints.progress = progress
  if start.data_iterator:
    iterator.set_state(start.data_iterator)
  log.info("model: %s; trainable %s of %s parameters; attention %s", model_config.describe(arch),
           f"{param_count(state.params):,}", f"{total_param_count(state, arch):,}",
           build.attention_impl(config, arch))
  if config.train.log_shardings:
    log.info("parameter shardings:\n%s", rules.describe(
        {"params": state.params, "frozen": state.frozen}, {"params": shardings.params, "frozen": shardings.frozen}))

  options = StepOptions.from_config(config)
  train_step = TrainStep(graphdef, tx, schedule, options, mesh, shardings)
  eval_step = EvalStep(graphdef, options, mesh, shardings)
  sharding = batch_sharding(mesh)
  writer = MetricsWriter(workdir, tensorboard=config.train.tensorboard, resume_step=start.step,
                         log=config.get("log"), run_config=config.to_dict())
  sampler_cache: dict = {}  # compiled decode loops, shared by this run's evaluations (one model shape)

  def evaluate(step: int, name: str = "") -> dict:
    """Samples and scores the setting's eval suite (inoc_jax.evaluation.harness) and logs the numbers."""
    out_dir = RunLayout(workdir).eval_dir(name or (f"step_{step}" if step < num_steps else "final"))
    sample_graphdef, sample_states = sampling_model(config, arch, graphdef, state, mesh)
    metrics = harness.evaluate_params(config, sample_graphdef, *sample_states, workdir=out_dir, mesh=mesh,
                                      encoder=encoder, checkpoint_id=workdir, step=step, sampler_cache=sampler_cache)
    for label, values in metrics.items():
      numbers = {k: v for k, v in flatten(values).items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None}
      writer.write(step, numbers, prefix=f"eval/{label}")
    return metrics

  def heldout_loss() -> float | None:
    if not heldout_examples:
      return None
    nll = count = 0.0
    for batch in fixed_batches(heldout_examples, config.data.global_batch_size // jax.process_count(),
                               config.data.seq_len):
      sums = eval_step(state, pipeline.to_global_batch(batch, sharding, BATCH_KEYS))
      nll, count = nll + float(sums.nll), count + float(sums.supervised_token_count)
    return nll / max(count, 1.0)

  initial_metrics = initial_evaluation(config, workdir, start.step, lambda: evaluate(0, "initial"))
  tokens_seen, loop_start, earlier = 0, None, dataclasses.replace(progress)
  bar = tqdm(total=num_steps, initial=start.step, desc="train", unit="step", disable=jax.process_index() != 0,
             dynamic_ncols=True, mininterval=progress_interval())
  stop = StopSignals()
  try:
    with stop:
      for step in range(start.step, num_steps):
        local = next(iterator)
        counts = supervised_token_counts(local["roles"], local["segment_ids"], config.loss.train_on)
        if counts.sum() == 0:
          ids = [i for i in local["example_ids"].ravel() if i]
          raise DataError(f"Batch at step {step} has no supervised token (examples {ids[:8]}); check "
                          "loss.train_on and the data's assistant turns.")
        state, metrics = train_step(state, pipeline.to_global_batch(local, sharding, BATCH_KEYS))
        metrics = jax.device_get(metrics)
        if loop_start is None:
          loop_start = time.time()  # exclude compilation from throughput
        else:
          tokens_seen += int((local["segment_ids"] != 0).sum()) * jax.process_count()
        loss = float(metrics["loss"])
        if not math.isfinite(loss):
          raise FloatingPointError(f"Loss became {loss} at step {step}; lower optim.lr or enable "
                                   "optim.grad_clip_norm.")
        progress.first_loss = loss if step == 0 else progress.first_loss
        progress.last_loss = loss
        progress.tokens = earlier.tokens + tokens_seen
        progress.train_seconds = earlier.train_seconds + (time.time() - loop_start)
        throughput = tokens_seen / max(time.time() - loop_start, 1e-9)
        bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{throughput:.0f}", refresh=False)
        bar.update(1)
        if step % config.train.log_every == 0 or step == num_steps - 1:
          writer.write(step + 1, {**metrics, "tokens_per_second": throughput})
        if (heldout_examples and config.train.heldout_every and (step + 1) % config.train.heldout_every == 0
            and step + 1 < num_steps):
          writer.write(step + 1, {"loss": heldout_loss()}, prefix="heldout")
        if config.eval.every_steps and (step + 1) % config.eval.every_steps == 0 and step + 1 < num_steps:
          evaluate(step + 1)
        checkpoints.after_step(step + 1, num_steps, state, iterator, stop)
  finally:
    bar.close()
    checkpoints.close()

  final_heldout = heldout_loss()
  if final_heldout is not None:
    writer.write(num_steps, {"loss": final_heldout}, prefix="heldout")
  eval_metrics = evaluate(num_steps) if config.eval.at_end else None
  writer.close()
  summary = RunSummary(steps=num_steps, final_loss=finite_or_none(progress.last_loss),
                       first_loss=finite_or_none(progress.first_loss), heldout_loss=finite_or_none(final_heldout),
                       tokens_per_second=progress.tokens_per_second(), wall_seconds=time.time() - start_time,
                       workdir=workdir, eval_metrics=eval_metrics, initial_eval_metrics=initial_metrics)
  if jax.process_index() == 0:
    storage.write_text(RunLayout(workdir).summary,
                       storage.dumps_json(dataclasses.asdict(summary), indent=2))
    if initial_metrics and eval_metrics:
      table = comparison_table(config, initial_metrics, eval_metrics, num_steps)
      storage.write_text(RunLayout(workdir).comparison, table + "\n")
      print(table, flush=True)
  return summary


def record_start(config: ml_collections.ConfigDict, workdir: str, start, fingerprint: str) -> RunProgress:
  """Writes config.json for a fresh run; for a resumed one refuses changed data settings (or records them).

  Returns the progress counters to continue from (the checkpoint's, or zeros).
  """
  config_path = RunLayout(workdir).config
  if start.step == 0:
    if jax.process_index() == 0:
      storage.write_text(config_path, config.to_json_best_effort(indent=2))
    return RunProgress(data_fingerprint=fingerprint)
  progress = RunProgress.from_json((start.saved_meta or {}).get("progress"))
  current = json.loads(config.to_json_best_effort())
  changes = resume_changes(start.saved_config or {}, current, progress.data_fingerprint, fingerprint)
  allow = bool(config.checkpoint.get("allow_resume_changes", False))
  check_resume(changes, start.step, allow)
  if changes and jax.process_index() == 0:
    log.warning("resuming at step %d with changed data settings (allowed): %s", start.step, "; ".join(changes))
    record = json.dumps({"step": start.step, "time": time.time(), "changes": changes, "config": current})
    log_file = storage.LineLog(RunLayout(workdir).resumes)
    log_file.write(record)
    log_file.close()
  if jax.process_index() == 0 and not storage.exists(config_path):
    storage.write_text(config_path, config.to_json_best_effort(indent=2))
  progress.data_fingerprint = fingerprint
  return progress


def initial_evaluation(config: ml_collections.ConfigDict, workdir: str, start_step: int,
                       evaluate_now) -> dict | None:
  """eval.initial: the initial model's metrics, evaluated now or read back from an earlier attempt.

  A run restarted after a crash reuses `<workdir>/eval/initial/results.json`
  instead of sampling again; a run resumed past step 0 without that file can no
  longer see its initial model, so it warns and returns None.
  """
  if not config.eval.get("initial", False):
    return None
  path = RunLayout(workdir).eval_results("initial")
  found = storage.exists(path)
  if jax.process_count() > 1:  # process 0 wrote the file: its view decides for every process
    found = bool(multihost_utils.broadcast_one_to_all(np.int32(found)))
  if found:
    if not storage.exists(path):
      return None  # on process 0's disk only; process 0 reports the numbers
    log.info("eval: reusing the initial model's evaluation in %s", path)
    results = json.loads(storage.read_text(path))["results"]
    return {label: result["metrics"] for label, result in results.items()}
  if start_step > 0:
    log.warning("eval.initial: resuming at step %d but %s is missing, so the initial model (no longer in "
                "memory) is not evaluated.", start_step, path)
    return None
  return evaluate_now()


def comparison_table(config: ml_collections.ConfigDict, initial: dict, final: dict, num_steps: int) -> str:
  """The closing table: initial vs final per eval prompt, and which arm this run is."""
  from inoc_jax.evaluation.comparison import format_comparison  # pylint: disable=g-import-not-at-top
  pool = train_prompt_pool(config)
  return format_comparison(config.setting, initial, final, pool,
                           title=f"{config.setting}: initial model vs after {num_steps} training steps")
