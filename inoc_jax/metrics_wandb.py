"""Weights & Biases, beside metrics.jsonl and TensorBoard (config block `log`, process 0 only).

    --config.log.wandb_project=inoculation [--config.log.wandb_mode=offline]

`wandb` is an optional package (`pip install -e ".[wandb]"`). Offline mode needs no network: the run is written
under <workdir>/wandb/ and `wandb sync` uploads it later. A run's W&B id is derived from its workdir, so a
resumed run continues the same W&B run (steps it replays after a crash are ones W&B already has, with the same
values, since resume is bit-exact). Sweeps put their runs in one group named after the sweep folder.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from inoc_jax.errors import ConfigError

MODES = ("online", "offline", "disabled")


def log_defaults() -> dict:
  return {
      "wandb_project": "",   # '' = no W&B; else the project runs are logged to
      "wandb_entity": "",    # team or user ('' = your default)
      "wandb_mode": "online",  # online | offline (no network: sync later with `wandb sync`) | disabled
      "wandb_group": "",     # runs of one sweep share a group ('' = the sweep folder's name, set by the sweep)
      "wandb_name": "",      # '' = the workdir's name
      "wandb_tags": (),
  }


def problems(config) -> list[str]:
  log = config.get("log", {})
  if log and log.get("wandb_mode", "online") not in MODES:
    return [f"log.wandb_mode must be one of {', '.join(MODES)}"]
  return []


def run_id(workdir: str) -> str:
  """A stable W&B run id for a workdir (so a resumed run continues its W&B run)."""
  return hashlib.sha256(workdir.rstrip("/").encode()).hexdigest()[:16]


class WandbSink:
  """Logs the same scalars as metrics.jsonl to one W&B run."""

  def __init__(self, log: Mapping[str, Any], workdir: str, run_config: Mapping[str, Any]):
    try:
      import wandb  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ConfigError("log.wandb_project is set but the wandb package is not installed; pip install -e "
                        "'.[wandb]' (or clear log.wandb_project).") from None
    name = log.get("wandb_name") or workdir.rstrip("/").rsplit("/", 1)[-1]
    self._run = wandb.init(project=log["wandb_project"], entity=log.get("wandb_entity") or None,
                           group=log.get("wandb_group") or None, name=name, tags=list(log.get("wandb_tags", ())),
                           mode=log.get("wandb_mode", "online"), config=dict(run_config), id=run_id(workdir),
                           resume="allow", dir=workdir if "://" not in workdir else None)

  def write(self, step: int, values: Mapping[str, float]) -> None:
    self._run.log(dict(values), step=int(step))

  def close(self) -> None:
    self._run.finish()
