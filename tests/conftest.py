"""Shared test helpers: subprocesses with fake CPU devices, tiny configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


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


@pytest.fixture
def python_subprocess():
  return run_python


def pytest_configure(config):
  config.addinivalue_line("markers", "science: long end-to-end science checks (run with -m science)")
  config.addinivalue_line("markers", "slow: tests that take more than ~30 s")
