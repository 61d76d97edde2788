"""Stop training cleanly on SIGTERM (spot/preemptible VMs, SLURM) or SIGINT (Ctrl-C).

The first signal only sets a flag: the loop finishes its current step, saves a
checkpoint and raises `TrainingInterrupted`, whose message is the exact command
that resumes the run. A second SIGINT interrupts immediately. With several
processes, every process stops at the same step (the flag is all-gathered).
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading

import jax
import numpy as np

from inoc_jax.errors import InocJaxError

EXIT_CODES = {"SIGTERM": 143, "SIGINT": 130}  # 128 + signal number, as the shell reports signals


class TrainingInterrupted(InocJaxError):
  """Training stopped on a signal after saving a checkpoint; `str(e)` says how to resume."""

  def __init__(self, message: str, *, signal_name: str, step: int):
    super().__init__(message)
    self.signal_name, self.step = signal_name, step
    self.exit_code = EXIT_CODES.get(signal_name, 1)


def resume_command(workdir: str, argv: list[str] | None = None) -> str:
  """The command that continues this run: this process's own arguments with `--workdir` pinned."""
  argv = list(sys.argv if argv is None else argv)
  args = [a for a in argv[1:] if not a.startswith("--workdir")]
  module = "inoc_jax.train"
  if argv and not argv[0].endswith(("train.py", "inoc_jax.train")):
    args = [a for a in args if a.startswith("--config")] or ["--config=<your config>"]
  return " ".join(["python", "-m", module, *map(shlex.quote, args), shlex.quote(f"--workdir={workdir}")])


class StopSignals:
  """Context manager: `requested()` turns true after SIGTERM/SIGINT (handlers restored on exit)."""

  def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
    self._signals = signals
    self._previous = {}
    self.received: str | None = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self._signals:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def _handle(self, signum, frame):
    name = signal.Signals(signum).name
    if self.received == "SIGINT" and name == "SIGINT":
      raise KeyboardInterrupt  # second Ctrl-C: stop now, without a checkpoint
    if self.received is None:
      self.received = name
      print(f"\n{name} received: finishing the current step and saving a checkpoint "
            "(Ctrl-C again to abort without saving).", file=sys.stderr, flush=True)

  def requested(self) -> bool:
    """True on every process as soon as any process got a signal."""
    local = self.received is not None
    if jax.process_count() == 1:
      return local
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    flags = multihost_utils.process_allgather(np.asarray([local], np.int32))
    if flags.any() and self.received is None:
      self.received = "SIGTERM"
    return bool(flags.any())
