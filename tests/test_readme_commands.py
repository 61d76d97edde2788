"""The README's commands in the form it prints them, run from a directory other than the repository.

The README's main command has no `--workdir` and relative paths everywhere; a
run that only works with absolute paths (Orbax refuses relative ones) is caught
here. The tiny preset stands in for the default one, which takes minutes.
"""

import glob
import json
import os
import shlex
import subprocess
import sys

import pytest

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


# Every command in the README's ```bash blocks: run here as printed (plus the listed shrinking flags, for the
# ones that take minutes at full size), or named with the test / CI step that runs it.
RUN_HERE = {  # README command prefix -> extra flags appended (the command itself is kept as printed)
    "python -m inoc_jax.data.inspect --config=configs/sycophancy.py --num=2": [],
    "python -m inoc_jax.data.inspect --config=configs/sycophancy.py --split=eval --num=60": [],
    "python -m inoc_jax.data.inspect --config=configs/sycophancy.py:tiny --split=eval": [],
    "XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m inoc_jax.train": [
        "--config.train.num_steps=2", "--config.data.num_train_examples=16", "--config.data.num_heldout_examples=0"],
    "python -m inoc_jax.evaluate --checkpoint=runs/ip": ["--set", "eval.max_new_tokens=4", "--eval_prompt=neutral"],
    "python -m inoc_jax.evaluate --config=configs/sycophancy.py:tiny --checkpoint=smollm2": [
        "--config.eval.max_examples=2", "--config.eval.max_new_tokens=4", "--eval_prompt=neutral"],
}
RUN_ELSEWHERE = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . &&":
        "the main command: its shape here (test_main_command_shape...), the default preset shrunk in "
        "tests/test_pretrained_training.py; a full run on a fresh clone is recorded in BUILD_NOTES",
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]"': ".ci/run, verbatim",
    "python -m inoc_jax.train --config=configs/sycophancy.py:neutral": "tests/test_pretrained_training.py (shape)",
    "python -m inoc_jax.train --config=configs/sycophancy.py --workdir=runs/gcd-ip": "tests/test_pretrained_training.py",
    "python -m inoc_jax.train --config=configs/sycophancy.py:tiny --config.model.checkpoint=smollm2":
        "tests/test_pretrained_training.py (SmolLM2 LoRA through the same CLI; 70 s here, so not twice)",
    "python -m inoc_jax.export --checkpoint=runs/smol": "tests/test_pretrained_training.py (export of that run)",
    "python -m inoc_jax.sweep --config=configs/sycophancy.py:smollm2_paper":
        "by hand (hours; results/ keeps each finished run); the same CLI and flags: tests/test_sweep.py",
    "python -m inoc_jax.report results/gcd-smollm2-paper": "by hand after the sweep; tests/test_report.py",
    "python -m inoc_jax.sweep --config=configs/sycophancy.py": "tests/test_sweep.py (tiny preset, same flags)",
    "python -m inoc_jax.report sweeps/gcd-small": "tests/test_sweep.py, tests/test_report.py",
    "python -m inoc_jax.sweep --config=configs/organism.py": ".ci/run's science step (tests/test_organism_science.py)",
    "python -m inoc_jax.elicit --config=configs/organism.py": ".ci/run's science step",
    "python -m inoc_jax.report sweeps/organism": ".ci/run's science step (aggregate + figures: test_report.py)",
    "python -m inoc_jax.train --config=configs/conversations.py --config.data.conversations.train_file=train.jsonl":
        "tests/test_conversations.py (the same options on the :tiny preset, a JSONL written by the test)",
    "python -m inoc_jax.sweep --config=configs/conversations.py:example":
        "by hand (3 seeds x 2 arms, numbers in the README); its data and scorers: tests/test_conversations.py",
    "python -m inoc_jax.report /tmp/conversations": "by hand after that sweep; tests/test_report.py",
    "python -m inoc_jax.compile_check --config=configs/reward_hacking.py:paper_ip --config.model.preset=qwen2.5-32b":
        "by hand (9 min of compile on 2 cores; numbers in BUILD_NOTES); the same flags on a tiny model: "
        "tests/test_compile_check.py::test_an_nf4_base_shards_its_codes_and_scales_by_the_kernels_rules",
    "python bench/train.py": "tests/test_bench.py (--skip_hf, tiny preset)",
    "python bench/decode.py": "tests/test_bench_decode.py, tests/test_bench.py",
    "bash bench/accelerator.sh": "tests/test_bench.py::test_accelerator_script_runs_on_cpu_with_a_tiny_override",
    "python bench/ablate.py loss": "tests/test_bench.py",
}


def readme_commands() -> list[str]:
  """The commands of the README's bash blocks, continuation lines joined, trailing comments removed."""
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    text = f.read()
  commands = []
  for block in text.split("```bash\n")[1:]:
    body = block.split("```", 1)[0].replace("\\\n", " ")
    for line in body.splitlines():
      line = line.split("   #")[0].split("  #")[0].strip()
      if line:
        commands.append(" ".join(line.split()))
  return commands


def _covered_by(command: str, table) -> str | None:
  return next((prefix for prefix in table if command.startswith(prefix)), None)


def test_every_readme_command_is_run_somewhere():
  missing = [c for c in readme_commands() if not (_covered_by(c, RUN_HERE) or _covered_by(c, RUN_ELSEWHERE))]
  assert not missing, f"README commands no test runs: {missing}"
  for where in RUN_ELSEWHERE.values():
    for path in (w.strip(";:.)") for w in where.replace(",", " ").replace("(", " ").split() if w.startswith("tests/")):
      assert os.path.exists(os.path.join(REPO, path.split("::")[0])), path


@pytest.mark.slow
def test_readme_commands_run_as_printed(tmp_path):
  """The cheap README commands, in README order, from a fresh directory holding only configs/ (runs/ is new)."""
  os.symlink(os.path.join(REPO, "configs"), tmp_path / "configs")
  ran = []
  for command in readme_commands():
    prefix = _covered_by(command, RUN_HERE)
    if prefix is None:
      continue
    words = shlex.split(command.replace("[--dtype=bfloat16]", ""))
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    while "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
      key, value = words.pop(0).split("=", 1)
      env[key] = value
    words[0] = sys.executable if words[0] == "python" else words[0]
    proc = subprocess.run([*words, *RUN_HERE[prefix]], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert proc.returncode == 0, (command, proc.stderr[-3000:])
    ran.append(prefix)
  assert sorted(ran) == sorted(RUN_HERE), "a RUN_HERE command is no longer in the README"
