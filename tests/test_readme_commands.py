"""The README's commands in the form it prints them, run from a directory other than the repository.

The README's main command has no `--workdir` and relative paths everywhere; a
run that only works with absolute paths (Orbax refuses relative ones) is caught
here. The tiny preset stands in for the default one, which takes minutes.
"""

import glob
import json
import os
import subprocess
import sys

from tests.conftest import REPO

TINY = [f"--config={REPO}/configs/sycophancy.py:tiny", "--config.train.num_steps=2",
        "--config.data.num_train_examples=16", "--config.data.num_heldout_examples=0",
        "--config.data.global_batch_size=4"]


def run_module(module: str, *args: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd, env=env,
                        timeout=timeout)


def test_main_command_shape_then_relative_evaluate_and_export(tmp_path):
  proc = run_module("inoc_jax.train", *TINY, cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  runs = glob.glob(str(tmp_path / "runs" / "sycophancy-tiny-*"))
  assert len(runs) == 1, os.listdir(tmp_path)
  run = runs[0]
  assert os.path.isdir(os.path.join(run, "checkpoints", "2")), os.listdir(os.path.join(run, "checkpoints"))
  with open(os.path.join(run, "summary.json"), encoding="utf-8") as f:
    assert json.load(f)["steps"] == 2
  relative = os.path.relpath(run, tmp_path)  # runs/sycophancy-tiny-<time>, as a user types it

  proc = run_module("inoc_jax.evaluate", f"--checkpoint={relative}", "--set", "eval.max_examples=2",
                    "--set", "eval.max_new_tokens=4", "--eval_prompt=neutral", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.exists(os.path.join(run, "eval", "checkpoint_2", "results.json"))

  proc = run_module("inoc_jax.export", f"--checkpoint={relative}", "--out=exported/tiny", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.exists(tmp_path / "exported" / "tiny" / "config.json")


def test_home_relative_workdir_and_checkpoint_dir(tmp_path):
  home = tmp_path / "home"
  home.mkdir()
  env_home = {"HOME": str(home)}
  args = [*TINY, "--workdir=~/run", "--config.checkpoint.dir=~/ckpt"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
             **env_home)
  proc = subprocess.run([sys.executable, "-m", "inoc_jax.train", *args], capture_output=True, text=True,
                        cwd=tmp_path, env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.isdir(home / "ckpt" / "2") and os.path.exists(home / "run" / "summary.json")
  assert not os.path.exists(tmp_path / "~")


def test_help_exits_zero(tmp_path):
  for module in ("inoc_jax.train", "inoc_jax.evaluate", "inoc_jax.export", "inoc_jax.sweep", "inoc_jax.report"):
    proc = run_module(module, "--help", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, (module, proc.stderr[-2000:])
    assert "--" in proc.stdout + proc.stderr
