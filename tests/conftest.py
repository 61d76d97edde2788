"""Shared test helpers: subprocesses with fake CPU devices, tiny configs."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CI checks the repository out beside `shared/`; a worktree elsewhere sets INOC_JAX_SHARED_DATA.
SHARED_DATA = os.environ.get("INOC_JAX_SHARED_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data")
PAPER_NOTES = os.path.join(os.path.dirname(SHARED_DATA), "PAPER_NOTES.md")
FIXTURES = os.path.join(REPO, "tests", "fixtures")

# Data sets built by tests go to one fresh folder per session (never the user's cache), removed at exit.
# Under pytest-xdist each worker process gets its own folder (the workers inherit the controller's environment).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_OWNER = os.environ.get("INOC_JAX_TFDS_DIR_OWNER")
if "INOC_JAX_TFDS_DIR" not in os.environ or (_OWNER is not None and _OWNER != _WORKER):
  os.environ["INOC_JAX_TFDS_DIR"] = tempfile.mkdtemp(prefix=f"inoc_jax_tfds_{_WORKER}")
  os.environ["INOC_JAX_TFDS_DIR_OWNER"] = _WORKER
  atexit.register(shutil.rmtree, os.environ["INOC_JAX_TFDS_DIR"], True)
os.environ.setdefault("INOC_JAX_SHARED_DATA", SHARED_DATA)

# One XLA compilation cache for the whole test session (every xdist worker and every subprocess inherits it):
# dozens of tests compile the same tiny models and steps, and a cache hit skips only XLA's compile, not the
# tracing and lowering the tests exercise. Made per session, so a run's timing never depends on an earlier run.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="inoc_jax_xla_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def run_python(code: str, devices: int = 1, timeout: int = 300, env: dict | None = None) -> dict:
  """Runs `code` in a fresh interpreter with `devices` fake CPU devices.

  The code must print one JSON object as its last stdout line; it is returned.
  """
  full_env = dict(os.environ)
  full_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  full_env["JAX_PLATFORMS"] = "cpu"
  full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
  full_env.update(env or {})
  proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                        timeout=timeout, env=full_env, cwd=REPO)
  if proc.returncode != 0:
    raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
  lines = [line for line in proc.stdout.splitlines() if line.strip()]
  return json.loads(lines[-1])


def run_processes(code: str, num_processes: int, devices_per_process: int = 1, timeout: int = 300) -> list[dict]:
  """Runs `code` in `num_processes` interpreters joined by jax.distributed (gloo on 127.0.0.1).

  The code finds its id in the environment (INOC_JAX_PROCESS_ID) and must call
  `jax.distributed.initialize(os.environ["INOC_JAX_COORDINATOR"], NUM, ID)` first;
  each process's last stdout line (JSON) is returned, in process order.
  """
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  procs = []
  for pid in range(num_processes):
    env = dict(os.environ)
    env.update({"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}", "JAX_PLATFORMS": "cpu",
                "PYTHONPATH": REPO + os.pathsep + env.get("PYTHONPATH", ""), "INOC_JAX_PROCESS_ID": str(pid),
                "INOC_JAX_NUM_PROCESSES": str(num_processes), "INOC_JAX_COORDINATOR": f"127.0.0.1:{port}"})
    procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env, cwd=REPO))
  results = []
  for proc in procs:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
      for other in procs:
        other.kill()
      raise AssertionError(f"process failed ({proc.returncode}):\n{out[-3000:]}\n{err[-5000:]}")
    results.append(json.loads([line for line in out.splitlines() if line.strip()][-1]))
  return results


@pytest.fixture
def python_subprocess():
  return run_python


def pytest_configure(config):
  config.addinivalue_line("markers", "science: long end-to-end science checks (run with -m science)")
  config.addinivalue_line("markers", "slow: tests that take more than ~30 s")


# The slowest files start first, so that with pytest-xdist's per-file scheduling no long file is left to run
# alone at the end (longest-processing-time-first). Measured with --durations; order only, nothing skipped.
# (pytest.ini turns off xdist's own reordering by test count, which would undo this.)
SLOWEST_FIRST = ("test_pretrained_training.py", "test_resume.py", "test_readme_commands.py", "test_compile_check.py",
                 "test_bench.py", "test_initial_eval.py", "test_multiprocess.py", "test_train_loop.py",
                 "test_sampler.py", "test_configs.py", "test_workdir_guard.py", "test_sharded_training.py",
                 "test_checkpoint.py", "test_weight_parity.py", "test_sampling_logits.py", "test_pipeline.py")


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
  items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))
