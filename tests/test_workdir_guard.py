"""A workdir holds one run at a time, and an unusable workdir is one sentence, not a traceback."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from inoc_jax.errors import ConfigError
from inoc_jax.runtime.workdir_lock import LOCK_NAME, WorkdirLock
from tests.conftest import REPO

TINY = ["--config=configs/sycophancy.py:tiny", "--config.data.num_train_examples=16",
        "--config.data.num_heldout_examples=0", "--config.data.global_batch_size=4", "--config.train.log_every=1"]


def _env():
  return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _train(*args, timeout=300):
  return subprocess.run([sys.executable, "-m", "inoc_jax.train", *args], cwd=REPO, env=_env(), capture_output=True,
                        text=True, timeout=timeout)


def _one_sentence(proc) -> str:
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith("error: "), proc.stderr[-2000:]
  return lines[-1]


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path):
  with WorkdirLock(str(tmp_path)):
    with pytest.raises(ConfigError, match=rf"in use by another run \(pid {os.getpid()} on host"):
      WorkdirLock(str(tmp_path)).acquire()
  assert not os.path.exists(tmp_path / LOCK_NAME)
  # A holder killed with SIGKILL leaves its file behind but not its flock.
  holder = subprocess.Popen([sys.executable, "-c", (
      "import sys, time; sys.path.insert(0, sys.argv[1]);"
      "from inoc_jax.runtime.workdir_lock import WorkdirLock; WorkdirLock(sys.argv[2]).acquire();"
      "print('locked', flush=True); time.sleep(600)"), REPO, str(tmp_path)], stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "locked"
  with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
    WorkdirLock(str(tmp_path)).acquire()
  holder.send_signal(signal.SIGKILL)
  holder.wait(timeout=30)
  assert os.path.exists(tmp_path / LOCK_NAME)
  with WorkdirLock(str(tmp_path)):
    pass


@pytest.mark.slow
def test_second_run_into_a_busy_workdir_stops_and_touches_nothing(tmp_path):
  workdir = tmp_path / "run"
  first = subprocess.Popen([sys.executable, "-m", "inoc_jax.train", *TINY, "--config.train.num_steps=400",
                            "--config.checkpoint.save_every=2", f"--workdir={workdir}"], cwd=REPO, env=_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 240
    while not (workdir / "checkpoints" / "2").exists():
      assert first.poll() is None and time.time() < deadline, "the first run made no checkpoint"
      time.sleep(0.2)
    before = sorted(os.listdir(workdir))
    config_before = (workdir / "config.json").read_text()
    second = _train(*TINY, "--config.train.num_steps=3", f"--workdir={workdir}")
    message = _one_sentence(second)
    assert f"in use by another run (pid {first.pid}" in message
    assert first.poll() is None, "the second run disturbed the first"
    assert (workdir / "config.json").read_text() == config_before
    assert sorted(os.listdir(workdir)) == before
  finally:
    first.kill()
    first.wait(timeout=60)


@pytest.mark.parametrize("where, expect", [
    ("file", "is a file, not a folder"),
    ("/proc/inoc_jax_run", "Cannot create the workdir /proc/inoc_jax_run"),
    ("/proc/self/status/run", "Cannot create the workdir"),
])
def test_unusable_workdir_is_one_sentence(tmp_path, where, expect):
  if where == "file":
    where = str(tmp_path / "a_file")
    open(where, "w").close()
  message = _one_sentence(_train(*TINY, "--config.train.num_steps=1", f"--workdir={where}"))
  assert expect in message


def test_unusable_checkpoint_dir_is_one_sentence(tmp_path):
  blocker = tmp_path / "blocker"
  blocker.write_text("")
  message = _one_sentence(_train(*TINY, "--config.train.num_steps=1", f"--workdir={tmp_path / 'run'}",
                                 f"--config.checkpoint.dir={blocker}/checkpoints"))
  assert "checkpoint" in message.lower() and str(blocker) in message


def _in_private_mount(tmp_path, script: str, args: list[str]):
  """Runs `script` (sh) in a private mount namespace with $DISK, $OUT, $PY and $ARGS set; returns $OUT."""
  disk, out = tmp_path / "disk", tmp_path / "out"
  disk.mkdir()
  out.mkdir()
  env = dict(_env(), DISK=str(disk), OUT=str(out), PY=sys.executable, ARGS=" ".join(args))
  subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], cwd=REPO, env=env, check=True,
                 timeout=600)
  return out


FULL_DISK_SCRIPT = """
set -e
mount -t tmpfs -o size=2M tmpfs "$DISK"
set +e
"$PY" -m inoc_jax.train $ARGS --workdir="$DISK/run" > "$OUT/full.log" 2>&1
echo $? > "$OUT/full.rc"
ls -a "$DISK/run/checkpoints" > "$OUT/after_full.txt"
mount -o remount,size=32M "$DISK"
"$PY" -m inoc_jax.train $ARGS --workdir="$DISK/run" > "$OUT/resumed.log" 2>&1
echo $? > "$OUT/resumed.rc"
ls -a "$DISK/run/checkpoints" > "$OUT/after_resume.txt"
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare to mount a small private tmpfs")
def test_full_disk_stops_cleanly_keeps_the_last_checkpoint_and_resumes(tmp_path):
  out = _in_private_mount(tmp_path, FULL_DISK_SCRIPT, [*TINY, "--config.train.num_steps=4",
                                                      "--config.checkpoint.save_every=1",
                                                      "--config.checkpoint.async_save=True"])
  log = (out / "full.log").read_text()
  assert (out / "full.rc").read_text().strip() == "2", log[-3000:]
  assert "Traceback" not in log and "Exception ignored" not in log, log[-3000:]
  assert log.strip().splitlines()[-1].startswith("error: Training stopped: the disk holding "), log[-2000:]
  assert "the last good checkpoint is step 1" in log
  left = (out / "after_full.txt").read_text().split()
  assert "1" in left and not [name for name in left if "tmp" in name], left
  resumed = (out / "resumed.log").read_text()
  assert (out / "resumed.rc").read_text().strip() == "0", resumed[-3000:]
  assert "resumed from checkpoint step 1" in resumed
  assert "4" in (out / "after_resume.txt").read_text().split()


READ_ONLY_SCRIPT = """
set -e
mount -t tmpfs -o size=1M tmpfs "$DISK"
mkdir "$DISK/run"
mount -o remount,ro "$DISK"
set +e
"$PY" -m inoc_jax.train $ARGS --workdir="$DISK/run" > "$OUT/ro.log" 2>&1
echo $? > "$OUT/ro.rc"
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare to mount a read-only tmpfs (root ignores file modes)")
def test_read_only_workdir_is_one_sentence(tmp_path):
  out = _in_private_mount(tmp_path, READ_ONLY_SCRIPT, [*TINY, "--config.train.num_steps=1"])
  disk = tmp_path / "disk"
  log = (out / "ro.log").read_text()
  assert (out / "ro.rc").read_text().strip() == "2" and "Traceback" not in log, log[-2000:]
  assert log.strip().splitlines()[-1] == f"error: The workdir {disk}/run is not writable; pass a writable folder with --workdir."
