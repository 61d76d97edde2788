"""What every benchmark shares: the machine's limits, peak memory, one-process-per-side runs, tables.

The limits are measured in the invocation that reports against them:
`matmul_limit` (FLOP/s of a jitted square matmul, the compute ceiling MFU is
quoted against) and `memory_bandwidth` (bytes/s of a large matrix-vector
product, the ceiling of weight-streaming decode). Each side of a comparison
runs in its own child process (`run_child` / `emit_result`), so its peak host
memory (`peak_host_memory_gib`, the child's VmHWM) is its own.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_PREFIX = "BENCH_RESULT "

# XLA:CPU flags per workload; see BUILD_NOTES "Performance" for the measurements. YNNPACK dot fusions
# run the skinny [batch, d] x [d, n] matmuls of decoding faster than XLA's default (Eigen) path on
# this machine's CPU, but the [2048, d] x [d, n] matmuls of training slower, so training keeps the
# default. XLA_FLAGS are per process, so a process that trains and samples gets one choice.
CPU_XLA_FLAGS = {
    "decode": ("--xla_cpu_experimental_ynn_fusion_type=dot",),
    "train": (),
}


def use_cpu_flags(workload: str, env: dict | None = None) -> dict:
  """Adds CPU_XLA_FLAGS[workload] to XLA_FLAGS of `env` (default os.environ, in place).

  Must run before jax is imported in that process. Flags already in XLA_FLAGS win, and
  INOC_JAX_BENCH_XLA_DEFAULTS=1 adds nothing (for before/after measurements).
  """
  env = os.environ if env is None else env
  if env.get("INOC_JAX_BENCH_XLA_DEFAULTS") == "1":
    return env
  flags = env.get("XLA_FLAGS", "").split()
  names = {f.split("=")[0] for f in flags}
  flags += [f for f in CPU_XLA_FLAGS[workload] if f.split("=")[0] not in names]
  if flags:
    env["XLA_FLAGS"] = " ".join(flags)
  return env


def best_seconds(fn, repeats: int) -> float:
  """Fastest of `repeats` calls of `fn()` (which blocks until its work is done)."""
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def matmul_limit(dtype: str = "float32", size: int = 2048, repeats: int = 10) -> float:
  """FLOP/s of a jitted [size, size] @ [size, size] matmul in `dtype` (2·size³ FLOP per call)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  a = jnp.ones((size, size), dtype)
  b = jnp.ones((size, size), dtype)
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  return 2 * size ** 3 / best_seconds(lambda: matmul(a, b).block_until_ready(), repeats)


def memory_bandwidth(gigabytes: float = 0.5, repeats: int = 10) -> float:
  """Weight-streaming bandwidth (bytes/s): a jitted float32 matrix-vector product, the shape of a decode step."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  cols = 16384
  matrix = jnp.ones((int(gigabytes * 2**30) // 4 // cols, cols), jnp.float32)
  vector = jnp.ones((cols,), jnp.float32)
  matvec = jax.jit(jnp.matmul)
  matvec(matrix, vector).block_until_ready()
  return matrix.nbytes / best_seconds(lambda: matvec(matrix, vector).block_until_ready(), repeats)


def peak_host_memory_gib() -> float:
  """Peak resident memory of this process (VmHWM), GiB."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 2**20
  except OSError:
    pass
  import resource  # pylint: disable=g-import-not-at-top
  scale = 2**30 if sys.platform == "darwin" else 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def machine_line() -> str:
  """One line naming the accelerator (or CPU), its count and the library versions."""
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  kind = device.device_kind if device.platform != "cpu" else (platform.processor() or platform.machine())
  load = ""
  if hasattr(os, "getloadavg"):
    load = f", load average {os.getloadavg()[0]:.1f}"
  return (f"{device.platform} {kind} x{jax.device_count()}, {os.cpu_count()} CPU threads{load}; "
          f"jax {jax.__version__}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")


def emit_result(result: dict[str, Any]) -> None:
  """Child side: print the result where `run_child` finds it."""
  print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(script: str, args: Sequence[str], *, timeout: float | None = None,
              env: dict | None = None) -> dict[str, Any]:
  """Runs `python script args` in a fresh process and returns the dict it emitted.

  A failed child yields {"error": last lines of its stderr} instead of raising, so
  one failing side leaves the rest of the table.
  """
  child_env = dict(os.environ if env is None else env)
  child_env["PYTHONPATH"] = REPO + os.pathsep + child_env.get("PYTHONPATH", "")
  try:
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout,
                          env=child_env, cwd=REPO)
  except subprocess.TimeoutExpired:
    return {"error": f"timed out after {timeout:.0f}s"}
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith(RESULT_PREFIX):
      return json.loads(line[len(RESULT_PREFIX):])
  tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
  return {"error": f"exit {proc.returncode}: " + " / ".join(tail)}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """A GitHub markdown table; floats get 3 significant digits, None is '-'."""
  def cell(value):
    if value is None:
      return "-"
    if isinstance(value, float):
      return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def parse_table(text: str) -> list[dict[str, str]]:
  """The rows of the first markdown table in `text`, as {header: cell} (used by the tests)."""
  lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
  if len(lines) < 2:
    return []
  headers = [c.strip() for c in lines[0].strip("|").split("|")]
  rows = []
  for line in lines[2:]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    if len(cells) != len(headers):
      break
    rows.append(dict(zip(headers, cells)))
  return rows


MAX_QUIET_LOAD = 1.0  # 1-minute load average above which a machine is too busy to benchmark


def load_average() -> float | None:
  return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def quiet_machine_check(allow_noisy: bool) -> bool:
  """True when the 1-minute load average is at most MAX_QUIET_LOAD; else refuse (exit 2) unless allowed.

  A benchmark taken while other work shares the CPU misstates both sides and their ratio, so the rows of
  a run that starts on a busy machine are marked "noisy" (with --allow_noisy) or not taken at all. On an
  accelerator the host's load does not set the timings, and the check passes.
  """
  import jax  # pylint: disable=g-import-not-at-top
  load = load_average()
  if load is None or load <= MAX_QUIET_LOAD or jax.default_backend() != "cpu":
    return True
  message = (f"load average {load:.2f} > {MAX_QUIET_LOAD}: other work shares the CPU, so timings would be wrong; "
             "wait until the machine is idle")
  if not allow_noisy:
    print(message + " (or pass --allow_noisy to mark the rows noisy).", file=sys.stderr)
    raise SystemExit(2)
  print(message + "; --allow_noisy: rows marked noisy.", file=sys.stderr)
  return False


def alternate(sides: dict[str, Any], repeats: int) -> dict[str, list[dict[str, Any]]]:
  """Runs each side's zero-argument callable `repeats` times, alternating A B A B ..., results per side.

  Alternating keeps a burst of other work from landing on one side only; `median_result` then takes the
  median of each side's repeats.
  """
  results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
  for _ in range(repeats):
    for name, run in sides.items():
      results[name].append(run())
  return results


def median_result(results: list[dict[str, Any]], key: str = "tokens_per_second") -> dict[str, Any]:
  """The repeat whose `key` is the median (lower median for an even count); {} if none succeeded.

  The returned dict gains `repeats` (how many succeeded) and `<key>_all` (every repeat's value).
  """
  good = sorted((r for r in results if key in r and r[key] is not None), key=lambda r: r[key])
  if not good:
    return next((r for r in results if "error" in r), {})
  chosen = dict(good[(len(good) - 1) // 2])
  chosen["repeats"] = len(good)
  chosen[f"{key}_all"] = [r[key] for r in good]
  return chosen


def load_line(label: str) -> str:
  load = load_average()
  return f"load average at {label}: {load:.2f}" if load is not None else f"load average at {label}: unknown"
