"""Shared command-line plumbing: logging set-up and one-sentence errors."""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback

from absl import flags

from inoc_jax.errors import InocJaxError
from inoc_jax.runtime import host_memory

# Multi-process start-up (inoc_jax.runtime.distributed); unnecessary under SLURM, Open MPI and Cloud TPU.
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 for a multi-process job.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job (with --coordinator_address).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's rank in [0, num_processes).")


HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


def config_argument() -> str:
  """The raw `--config=...` value given on the command line."""
  for arg in sys.argv[1:]:
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
  return "config"


def setup_logging() -> None:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
                      force=True)
  for noisy in ("absl", "jax._src", "orbax", "tensorflow", "absl.logging"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing (which loads the config file) with one-line errors; --help exits 0."""
  try:
    try:
      remaining = flags.FLAGS(argv)
    except SystemExit as e:
      asked_for_help = any(a.split("=")[0] in HELP_FLAGS for a in argv[1:])
      sys.exit(0 if asked_for_help and e.code == 1 else e.code)  # absl's help flags exit 1
    if "config" in flags.FLAGS and flags.FLAGS["config"].present:
      getattr(flags.FLAGS.config, "setting", None)  # config_flags defers file errors to first access
    return remaining
  except OSError:
    _fail(f"cannot load the config file {config_argument().split(':')[0]!r}; check the path "
          "(configs live in configs/, e.g. --config=configs/sycophancy.py).")
  except InocJaxError as e:
    _fail(str(e))
  except flags.Error as e:
    _fail(f"{e}; see --helpfull for the flags.")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    detail = str(e).strip("'\"").replace("\\n", " ").replace("\n", " ").replace("\\'", "'")
    _fail(f"bad --config override ({detail}); check the field name and type in the config file.")
  return argv


def initialize_distributed() -> None:
  """Joins the multi-process job described by the flags or the cluster environment (no-op alone)."""
  from inoc_jax.runtime import distributed  # pylint: disable=g-import-not-at-top
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)


def _in_multiprocess_job() -> bool:
  jax = sys.modules.get("jax")
  return bool(jax and jax.distributed.is_initialized() and jax.process_count() > 1)


def _exit_now(status: int) -> None:
  """Ends a failed process of a multi-process job at once.

  A normal exit runs JAX's shutdown barrier, which waits for every other process;
  those are meanwhile blocked in the next collective, so one host's error would
  hang the whole job until a timeout. os._exit skips the barrier: the peers see
  this process gone and fail too.
  """
  sys.stdout.flush()
  sys.stderr.flush()
  logging.shutdown()
  os._exit(status)  # pylint: disable=protected-access


def friendly(main, *, distributed: bool = True):
  """Wraps an absl main: host allocator and multi-process start-up, then user errors print one line and exit 2.

  Pass distributed=False for tools that must stay single-process (e.g. compile_check).
  In a multi-process job a failing process exits at once (see `_exit_now`).
  """

  @functools.wraps(main)
  def wrapped(argv):
    setup_logging()
    host_memory.keep_freed_host_memory()  # INOC_JAX_HOST_MALLOC=keep: before the backend starts
    try:
      if distributed:
        initialize_distributed()
      return main(argv)
    except InocJaxError as e:
      if _in_multiprocess_job():
        print(f"error: {e}", file=sys.stderr)
        _exit_now(2)
      _fail(str(e))
    except OSError as e:  # the machine's fault, not the program's: disk full, permissions, a vanished folder
      where = f" at {e.filename}" if e.filename else ""
      message = (f"{e.strerror or e}{where}; check free disk space, permissions and the paths in the config, "
                 "then rerun the same command (a run resumes from its last checkpoint).")
      if _in_multiprocess_job():
        print(f"error: {message}", file=sys.stderr)
        _exit_now(2)
      _fail(message)
    except KeyboardInterrupt:
      print("interrupted", file=sys.stderr)
      if _in_multiprocess_job():
        _exit_now(130)
      sys.exit(130)
    except Exception:  # pylint: disable=broad-except
      if not _in_multiprocess_job():
        raise
      traceback.print_exc()
      _exit_now(1)

  return wrapped
