"""Two JAX processes on 127.0.0.1 (gloo, 2 fake CPU devices each) train exactly like one process with 4.

Each job runs the real `python -m inoc_jax.train` CLI (through tests/multiprocess_worker.py,
which records the final parameter shards). Processes get a fresh coordinator port, their
own session (so teardown kills whole process groups), and a hard timeout; if one process
fails, the others are killed at once instead of waiting for JAX's heartbeat.

Checkpoint save/restore joins this test once the trainer writes Orbax checkpoints: run
`_run_job` for the first steps, again with the same workdir to resume, and compare with
the uninterrupted single-process curve (see `_train_flags`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.multiprocess

JOB_TIMEOUT_S = 420
NUM_STEPS = 5


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@dataclasses.dataclass
class JobResult:
  metrics: list[dict]          # metrics.jsonl records (written by process 0 only)
  params: dict[str, np.ndarray]  # final trainable params, reassembled from every process's shards
  logs: list[str]              # each process's stderr


def _train_flags(workdir: str, num_slices: int) -> list[str]:
  return [
      "--config=configs/sycophancy.py", f"--workdir={workdir}",
      "--config.data.num_train_examples=64", "--config.data.num_heldout_examples=8",
      "--config.data.global_batch_size=8", f"--config.train.num_steps={NUM_STEPS}",
      "--config.train.log_every=1", "--config.mesh.data=2", "--config.mesh.fsdp=2",
      f"--config.mesh.num_slices={num_slices}",
  ]


def _assemble(record_dir: str, num_processes: int) -> dict[str, np.ndarray]:
  shapes = json.load(open(os.path.join(record_dir, "shapes.json")))
  params = {name: np.full(shape, np.nan, np.float32) for name, shape in shapes.items()}
  for rank in range(num_processes):
    with np.load(os.path.join(record_dir, f"params_p{rank}.npz")) as shards:
      for key in shards.files:
        name, index = key.split("|")
        region = tuple(slice(*map(int, part.split(":"))) for part in index.split(",") if part)
        params[name][region] = shards[key]
  for name, array in params.items():
    assert not np.isnan(array).any(), f"no process recorded every shard of {name}"
  return params


def _kill(procs) -> None:
  for proc in procs:
    if proc.poll() is None:
      try:
        os.killpg(proc.pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
  for proc in procs:
    proc.wait()


def _start_job(tmp_path, name: str, num_processes: int, devices_per_process: int, num_slices: int = 0,
               rank_args: dict[int, list[str]] | None = None):
  """Starts every process of a job; returns (processes, their log paths, workdir, record dir)."""
  workdir, record_dir = tmp_path / name / "workdir", tmp_path / name / "record"
  record_dir.mkdir(parents=True)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
  for var in ("SLURM_JOB_ID", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
    env.pop(var, None)  # the flags, not a surrounding cluster, define this job
  port = free_port()
  procs, log_paths = [], []
  try:
    for rank in range(num_processes):
      dist = [] if num_processes == 1 else [f"--coordinator_address=127.0.0.1:{port}",
                                            f"--num_processes={num_processes}", f"--process_id={rank}"]
      log_path = tmp_path / name / f"process{rank}.log"
      log_paths.append(log_path)
      with open(log_path, "w") as log_file:
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(REPO, "tests", "multiprocess_worker.py"), str(record_dir), "--",
             *_train_flags(str(workdir), num_slices), *dist, *(rank_args or {}).get(rank, [])],
            cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True))
  except BaseException:
    _kill(procs)
    raise
  return procs, log_paths, workdir, record_dir


def _wait(procs) -> None:
  """Until all exit 0, one fails (then the rest are killed at once) or the job times out."""
  deadline = time.monotonic() + JOB_TIMEOUT_S
  try:
    while True:
      states = [p.poll() for p in procs]  # poll every process (any() would stop at the first running one)
      if all(s is not None for s in states) or any(s not in (None, 0) for s in states):
        break
      if time.monotonic() > deadline:
        break
      time.sleep(0.5)
  finally:
    _kill(procs)


def _run_job(tmp_path, name: str, num_processes: int, devices_per_process: int, num_slices: int = 0) -> JobResult:
  procs, log_paths, workdir, record_dir = _start_job(tmp_path, name, num_processes, devices_per_process, num_slices)
  _wait(procs)
  logs = [path.read_text() for path in log_paths]
  for rank, proc in enumerate(procs):
    assert proc.returncode == 0, f"process {rank} exited with {proc.returncode}:\n{logs[rank][-4000:]}"
  metrics = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  return JobResult(metrics=metrics, params=_assemble(str(record_dir), num_processes), logs=logs)


def _loss_curve(result: JobResult) -> list[float]:
  return [r["train/loss"] for r in result.metrics if "train/loss" in r]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
  return _run_job(tmp_path_factory.mktemp("single"), "single", num_processes=1, devices_per_process=4)


def _assert_same_training(result: JobResult, reference: JobResult) -> None:
  assert len(_loss_curve(reference)) == NUM_STEPS
  np.testing.assert_allclose(_loss_curve(result), _loss_curve(reference), rtol=2e-5)
  counts = lambda r: [m["train/supervised_token_count"] for m in r.metrics if "train/loss" in m]
  assert counts(result) == counts(reference)  # the same examples in every global batch
  heldout = lambda r: [m["heldout/loss"] for m in r.metrics if "heldout/loss" in m]
  np.testing.assert_allclose(heldout(result), heldout(reference), rtol=2e-5)
  assert result.params.keys() == reference.params.keys()
  for name, value in reference.params.items():
    np.testing.assert_allclose(result.params[name], value, rtol=1e-4, atol=2e-6, err_msg=name)
  moved = sum(float(np.abs(v).sum()) for v in reference.params.values())
  assert moved > 0


def test_two_processes_with_data_across_hosts_match_one_process(tmp_path, single_process):
  """mesh.num_slices=2: `data` spans the two processes (the DCN layout), fsdp stays inside each."""
  result = _run_job(tmp_path, "two", num_processes=2, devices_per_process=2, num_slices=2)
  _assert_same_training(result, single_process)
  assert "distributed start-up via flags: process 0/2" in result.logs[0]
  assert "distributed start-up via flags: process 1/2" in result.logs[1]
  # Only process 0 writes: one record per step, one TensorBoard event file, and a quiet process 1.
  steps = [r["step"] for r in result.metrics if "train/loss" in r]
  assert steps == sorted(set(steps))
  assert "model:" in result.logs[0] and "model:" not in result.logs[1]


def test_two_processes_with_default_layout_match_one_process(tmp_path, single_process):
  """Default mesh: JAX orders devices, so fsdp may span processes; results must not change."""
  result = _run_job(tmp_path, "two_default", num_processes=2, devices_per_process=2)
  _assert_same_training(result, single_process)


def test_a_failing_process_ends_the_whole_job_at_once(tmp_path):
  """Process 1 stops on a config error; process 0 (waiting for it at start-up) must not linger."""
  start = time.monotonic()
  procs, log_paths, _, _ = _start_job(tmp_path, "broken", num_processes=2, devices_per_process=2,
                                      rank_args={1: ["--config.optim.lr=-1"]})
  _wait(procs)
  assert time.monotonic() - start < 120
  assert procs[1].returncode == 2 and "optim.lr must be >= 0" in log_paths[1].read_text()
  assert procs[0].returncode != 0  # killed by the harness, not left running
  assert all(p.poll() is not None for p in procs)
  # Process 1 left at once instead of waiting in JAX's shutdown barrier until process 0 timed out.
  assert "DEADLINE_EXCEEDED" not in log_paths[0].read_text()
