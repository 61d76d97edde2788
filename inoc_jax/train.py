"""Train one run: `python -m inoc_jax.train --config=configs/sycophancy.py[:preset] [--workdir=DIR]`.

Every config field can be overridden, e.g. `--config.optim.lr=1e-4`. Running the
same command with the same `--workdir` resumes from its newest checkpoint.
"""

from __future__ import annotations

import datetime
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from inoc_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file, optionally ':preset'.",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config>-<time>).")


def default_workdir(config_arg: str) -> str:
  name = os.path.splitext(os.path.basename(config_arg.split(":")[0]))[0]
  preset = config_arg.split(":")[1] if ":" in config_arg else ""
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  return os.path.join("runs", f"{name}{'-' + preset if preset else ''}-{stamp}")


def main(argv):
  del argv
  from inoc_jax import trainer  # pylint: disable=g-import-not-at-top
  from inoc_jax.checkpoint.preemption import TrainingInterrupted  # pylint: disable=g-import-not-at-top
  workdir = _WORKDIR.value or default_workdir(cli.config_argument())
  try:
    summary = trainer.train_and_evaluate(_CONFIG.value, workdir)
  except TrainingInterrupted as e:
    print(str(e), file=sys.stderr, flush=True)
    sys.exit(e.exit_code)  # 143 after SIGTERM, 130 after SIGINT: "stopped by a signal", checkpoint saved
  print(summary.line())


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(cli.friendly(main), flags_parser=cli.parse_flags)
