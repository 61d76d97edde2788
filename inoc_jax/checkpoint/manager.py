"""Orbax checkpoints of a training run: save, keep the last K, restore the newest good one.

Layout of `<workdir>/checkpoints/<step>/` (local path or gs://), one Orbax item each:

  params      trainable parameters (nested dict of arrays; LoRA adapters or all weights)
  frozen      frozen base weights, only with `checkpoint.save_frozen` (otherwise they are
              rebuilt from `model.checkpoint` or the seed and checked against `meta`)
  optimizer   {"opt_state": ..., "step": int32, "rng": uint32[2]}
  data_iterator  JSON states of the input pipeline, one per process (see iterator_state.py)
  config      the run's config as JSON
  meta        JSON: format version, step, model config, LoRA config, per-leaf checksums

Saves are asynchronous (arrays are copied to host before `save` returns, so the
next step may donate them) and atomic (Orbax writes a temporary directory and
renames it, or writes a commit marker on GCS). Restoring walks the steps from
newest to oldest: a step that fails to read or whose checksums disagree is
reported, moved aside to `<dir>-corrupt/`, and the previous one is used.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import shutil
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from inoc_jax.checkpoint import tree_codec
from inoc_jax.errors import CheckpointError
from inoc_jax.runtime import storage

log = logging.getLogger("inoc_jax")

FORMAT_VERSION = 1
ARRAY_ITEMS = ("params", "frozen", "optimizer")
JSON_ITEMS = ("data_iterator", "config", "meta")


TMP_SUFFIX = ".orbax-checkpoint-tmp"


class _QuietOrbaxErrors(logging.Filter):
  """Drops Orbax's background-thread error logs (tracebacks, one per thread); `Checkpointer` re-raises the
  same failure in the main thread as one sentence."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.levelno >= logging.ERROR and "orbax" in record.pathname)


def _short(error: BaseException, limit: int = 160) -> str:
  """The first line of an error message, cut to `limit` characters (TensorStore errors run to pages)."""
  text = " ".join(str(error).split())
  return (text[:limit] + "...") if len(text) > limit else (text or type(error).__name__)


def _disk_full(error: BaseException) -> bool:
  return getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(
      marker in str(error) for marker in ("No space left on device", "Disk quota exceeded"))


_QUIET = _QuietOrbaxErrors()


class IncompatibleCheckpoint(CheckpointError):
  """The checkpoint is readable but was written for another model or optimizer configuration."""


@dataclasses.dataclass
class Restored:
  """One restored step. `frozen` is None when the checkpoint does not hold it."""

  step: int
  params: Any
  frozen: Any | None
  optimizer: dict | None
  data_iterator: dict | None
  config: dict
  meta: dict


def _handlers() -> dict:
  handlers = {name: ocp.StandardCheckpointHandler() for name in ARRAY_ITEMS}
  handlers.update({name: ocp.JsonCheckpointHandler() for name in JSON_ITEMS})
  return handlers


def _shapes(tree: Any) -> dict[str, list[int]]:
  return dict(zip(tree_codec.flat_paths(tree), (list(x.shape) for x in jax.tree_util.tree_leaves(tree))))


def _check_compatible(step: int, name: str, stored: dict[str, list[int]], target: Any) -> None:
  """Raises IncompatibleCheckpoint when `target` does not have the stored item's leaves and shapes."""
  wanted = _shapes(target)
  if wanted == stored:
    return
  missing, extra = sorted(set(stored) - set(wanted)), sorted(set(wanted) - set(stored))
  reshaped = [f"{p} {stored[p]} vs {wanted[p]}" for p in sorted(set(stored) & set(wanted)) if stored[p] != wanted[p]]
  details = "; ".join(part for part in (
      f"only in the checkpoint: {missing[:3]}" if missing else "", f"only in this run: {extra[:3]}" if extra else "",
      f"shapes differ: {reshaped[:3]}" if reshaped else "") if part)
  raise IncompatibleCheckpoint(
      f"Checkpoint step {step} was written by a different configuration ({name}: {details}); resume with the "
      "run's original model/LoRA/optimizer settings or use a new --workdir.")


def _abstract(tree: Any, shardings: Any) -> Any:
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


class Checkpointer:
  """A run's checkpoint directory.

  Args:
    directory: e.g. `<workdir>/checkpoints` or `gs://bucket/run/checkpoints`.
    keep: how many of the newest checkpoints to keep.
    async_save: write in a background thread (training continues meanwhile).
    save_frozen: also store the frozen base weights of LoRA runs.
    read_only: never write or delete (evaluation and export).
  """

  def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True, save_frozen: bool = False,
               read_only: bool = False):
    self.directory = epath.Path(storage.resolve(str(directory)))
    self.save_frozen = save_frozen
    self.read_only = read_only
    self._keep, self._async = keep, async_save
    self._failed = False
    logging.getLogger("absl").addFilter(_QUIET)
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=self._keep, create=not self.read_only, read_only=self.read_only,
        enable_async_checkpointing=self._async and not self.read_only, cleanup_tmp_directories=not self.read_only)
    try:
      return ocp.CheckpointManager(self.directory, options=options, item_handlers=_handlers())
    except OSError as e:
      raise CheckpointError(f"Cannot use the checkpoint folder {self.directory} ({e.strerror or e}); set "
                            "--config.checkpoint.dir to a writable folder (or leave it empty for "
                            "<workdir>/checkpoints).") from None

  # -- saving ----------------------------------------------------------------
  def save(self, step: int, state, *, data_iterator: dict | None, config: dict, run_meta: dict) -> None:
    """Starts saving `state` (a TrainState) as `step`; returns once arrays are on the host."""
    if self.read_only:
      raise CheckpointError(f"{self.directory} was opened read-only; it cannot save.")
    if step in self._manager.all_steps():
      return  # e.g. the final save right after a periodic one at the same step
    arrays = {"params": tree_codec.to_nested(state.params),
              "optimizer": tree_codec.to_nested({"opt_state": state.opt_state, "step": state.step,
                                                 "rng": state.rng})}
    if self.save_frozen:
      arrays["frozen"] = tree_codec.to_nested(state.frozen)
    arrays = {name: tree for name, tree in arrays.items() if jax.tree_util.tree_leaves(tree)}
    self._check_free_space(sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(arrays)))
    meta = dict(run_meta, format_version=FORMAT_VERSION, step=int(step), saved_at=time.time(),
                items=sorted(arrays), process_count=jax.process_count(),
                checksums={name: tree_codec.checksums(tree) for name, tree in arrays.items()},
                shapes={name: _shapes(tree) for name, tree in arrays.items()},
                frozen_checksums=tree_codec.checksums(state.frozen))
    args = {name: ocp.args.StandardSave(tree) for name, tree in arrays.items()}
    args["meta"] = ocp.args.JsonSave(meta)
    args["config"] = ocp.args.JsonSave(config)
    args["data_iterator"] = ocp.args.JsonSave(data_iterator or {})
    try:
      self._manager.save(step, args=ocp.args.Composite(**args), force=True)
    except Exception as e:  # pylint: disable=broad-except  (also the previous async save's failure)
      raise self._save_failed(e) from None
    log.info("checkpoint: saving step %d to %s%s", step, self.directory, " (async)" if self._async else "")

  def wait(self) -> None:
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_failed(e) from None

  def close(self) -> None:
    if not self._failed:
      self.wait()
    try:
      self._manager.close()
    except Exception:  # pylint: disable=broad-except  (already reported by wait)
      if not self._failed:
        raise

  def _check_free_space(self, needed: int) -> None:
    """Refuses a save that cannot fit on a local disk before Orbax starts it (a save that dies half-way leaves
    TensorStore callbacks failing noisily in the background)."""
    if storage.is_remote(str(self.directory)):
      return
    self.wait()  # the previous save's bytes are on disk (or its failure is reported)
    free = shutil.disk_usage(self.directory).free
    if free < needed * 1.1 + 2**18:  # + Orbax metadata
      raise self._save_failed(OSError(errno.ENOSPC, f"{free} bytes free, a checkpoint needs about {needed}"))

  def _save_failed(self, error: BaseException) -> CheckpointError:
    """Removes the half-written step and says, in one sentence, what failed and what is still there."""
    self._failed = True
    for partial in self.directory.glob(f"*{TMP_SUFFIX}*"):
      try:
        partial.rmtree() if partial.is_dir() else partial.unlink()
      except Exception:  # pylint: disable=broad-except
        log.warning("could not remove the partial checkpoint %s", partial)
    good = sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())
    kept = f"the last good checkpoint is step {good[-1]}" if good else "no checkpoint was saved yet"
    problem = (f"the disk holding {self.directory} is full" if _disk_full(error)
               else f"saving a checkpoint to {self.directory} failed ({_short(error)})")
    fix = "free space (or set --config.checkpoint.dir elsewhere)" if _disk_full(error) else "fix that"
    return CheckpointError(f"Training stopped: {problem}; {kept}, so {fix} and rerun the same command to resume.")

  # -- reading ---------------------------------------------------------------
  def steps(self) -> list[int]:
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def read_json(self, step: int, name: str) -> dict:
    return self._manager.restore(step, args=ocp.args.Composite(**{name: ocp.args.JsonRestore()}))[name]

  def restore_step(self, step: int, abstract: dict[str, Any], shardings: dict[str, Any]) -> Restored:
    """Restores `step`; `abstract`/`shardings` map item names ('params', 'frozen', 'optimizer') to
    target trees (missing names are not read). Checksums are verified; raises on any problem."""
    meta = self.read_json(step, "meta")
    if meta.get("format_version") != FORMAT_VERSION:
      raise CheckpointError(f"checkpoint step {step} has format {meta.get('format_version')}, expected "
                            f"{FORMAT_VERSION}")
    wanted = [name for name in abstract if name in meta["items"]]
    for name in wanted:
      _check_compatible(step, name, meta["shapes"][name], tree_codec.to_nested(abstract[name]))
    targets = {name: _abstract(tree_codec.to_nested(abstract[name]), tree_codec.to_nested(shardings[name]))
               for name in wanted}
    args = {name: ocp.args.StandardRestore(targets[name]) for name in wanted}
    args.update(config=ocp.args.JsonRestore(), data_iterator=ocp.args.JsonRestore())
    items = self._manager.restore(step, args=ocp.args.Composite(**args))
    restored = {name: tree_codec.from_nested(items[name], abstract[name]) for name in wanted}
    for name in wanted:
      got = tree_codec.checksums(tree_codec.to_nested(restored[name]))
      bad = [path for path, value in meta["checksums"][name].items() if got.get(path) != value]
      if bad:
        raise CheckpointError(f"checkpoint step {step}: item {name!r} fails its checksum at {bad[:3]}")
    return Restored(step=step, params=restored.get("params"), frozen=restored.get("frozen"),
                    optimizer=restored.get("optimizer"), data_iterator=items["data_iterator"] or None,
                    config=items["config"], meta=meta)

  def restore_latest(self, abstract: dict[str, Any], shardings: dict[str, Any]) -> Restored | None:
    """The newest step that restores cleanly; broken newer steps are warned about and moved aside.

    Returns None when the directory has no checkpoint.
    """
    steps = self.steps()
    broken = []
    for step in reversed(steps):
      try:
        restored = self.restore_step(step, abstract, shardings)
      except IncompatibleCheckpoint:
        raise  # a configuration problem, not damage: never skip or move good checkpoints
      except Exception as e:  # pylint: disable=broad-except  (any unreadable step falls back)
        reason = _short(e)
        log.warning("checkpoint step %d in %s is unreadable (%s: %s); falling back to the previous one",
                    step, self.directory, type(e).__name__, reason)
        broken.append(step)
        continue
      if broken:
        self._quarantine(broken)
      return restored
    if broken:
      raise CheckpointError(f"No checkpoint in {self.directory} can be read (steps {broken}); move the folder "
                            "away to start afresh.")
    return None

  def _quarantine(self, steps: list[int]) -> None:
    """Moves broken steps out of the way so later saves can reuse their step numbers."""
    if self.read_only:
      return
    target = self.directory.parent / f"{self.directory.name}-corrupt"
    if jax.process_index() == 0:
      target.mkdir(parents=True, exist_ok=True)
      for step in steps:
        source = self.directory / str(step)
        destination = target / f"{step}-{int(time.time())}"
        try:
          source.rename(destination)
        except Exception:  # pylint: disable=broad-except  (object stores without rename)
          source.rmtree()
          destination = "deleted"
        log.warning("moved unreadable checkpoint step %d to %s", step, destination)
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("inoc_jax_checkpoint_quarantine")
    self._manager.close()
    self._manager = self._open()
