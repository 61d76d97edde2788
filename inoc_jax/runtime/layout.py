"""Where a run's and a sweep's files live: the one module every reader and writer asks (local paths or gs://).

A run (one workdir; `python -m inoc_jax.train --workdir=W`):
  W/config.json  W/summary.json  W/metrics.jsonl  W/resumes.jsonl  W/run.lock  W/tensorboard/
  W/checkpoints/<step>/           (or checkpoint.dir)
  W/eval/<name>/results.json      name = initial | final | step_<n> | checkpoint_<n> (python -m inoc_jax.evaluate)
  W/eval/comparison.txt           initial vs final, when both were evaluated
A sweep (`python -m inoc_jax.sweep --workdir=S`):
  S/sweep.json                    setting, config argument, overrides, arms, seeds
  S/base/seed<k>/                 the base run of seed k (a run), exported to S/base/seed<k>/hf/
  S/initial/seed<k>/results.json  the initial model's evaluation
  S/runs/<arm>-seed<k>/           one run, plus run.json (arm, seed, status) and results.json (= its eval/final)
  S/elicitation.json              python -m inoc_jax.elicit --sweep_dir=S
  S/report/                       python -m inoc_jax.report S
"""

from __future__ import annotations

import dataclasses
import re

from inoc_jax.runtime import storage

CHECKPOINTS = "checkpoints"
LOCK = "run.lock"


@dataclasses.dataclass(frozen=True)
class RunLayout:
  workdir: str

  def _file(self, *parts: str) -> str:
    return storage.join(self.workdir, *parts)

  @property
  def config(self) -> str:
    return self._file("config.json")

  @property
  def summary(self) -> str:
    return self._file("summary.json")

  @property
  def metrics(self) -> str:
    return self._file("metrics.jsonl")

  @property
  def lock(self) -> str:
    return self._file(LOCK)

  @property
  def checkpoints(self) -> str:
    return self._file(CHECKPOINTS)

  @property
  def resumes(self) -> str:
    return self._file("resumes.jsonl")

  @property
  def tensorboard(self) -> str:
    return self._file("tensorboard")

  @property
  def comparison(self) -> str:
    return self._file("eval", "comparison.txt")

  def eval_dir(self, name: str) -> str:
    return self._file("eval", name)

  def eval_results(self, name: str) -> str:
    return self._file("eval", name, "results.json")


@dataclasses.dataclass(frozen=True)
class SweepLayout:
  root: str

  def _file(self, *parts: str) -> str:
    return storage.join(self.root, *parts)

  @property
  def sweep_json(self) -> str:
    return self._file("sweep.json")

  @property
  def elicitation(self) -> str:
    return self._file("elicitation.json")

  @property
  def report_dir(self) -> str:
    return self._file("report")

  def base_dir(self, seed: int) -> str:
    return self._file("base", f"seed{seed}")

  def base_export(self, seed: int) -> str:
    return self._file("base", f"seed{seed}", "hf")

  def initial_dir(self, seed: int) -> str:
    return self._file("initial", f"seed{seed}")

  def run_dir(self, slug: str, seed: int) -> str:
    return self._file("runs", f"{slug}-seed{seed}")

  @staticmethod
  def run_record(run_dir: str) -> str:
    return storage.join(run_dir, "run.json")

  @staticmethod
  def run_results(run_dir: str) -> str:
    return storage.join(run_dir, "results.json")

  def run_dirs(self) -> list[str]:
    """Every run folder that has a run.json (started by the sweep), sorted."""
    return [path[:-len("/run.json")] for path in storage.glob(self._file("runs", "*", "run.json"))]

  def initial_results(self) -> list[tuple[int, str]]:
    """(seed, results.json) of each initial-model evaluation."""
    return [(_seed_of(path.rsplit("/", 2)[-2]), path)
            for path in storage.glob(self._file("initial", "seed*", "results.json"))]

  def base_exports(self) -> list[tuple[int, str]]:
    """(seed, HF folder) of each exported base model."""
    return [(_seed_of(path.rsplit("/", 3)[-3]), path[:-len("/config.json")])
            for path in storage.glob(self._file("base", "seed*", "hf", "config.json"))]


def _seed_of(folder: str) -> int:
  found = re.fullmatch(r"seed(-?\d+)", folder)
  return int(found.group(1)) if found else 0
