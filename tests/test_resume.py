"""Acceptance: exact resume after kill -9, clean stop on SIGTERM, fallback past a truncated checkpoint,
restore onto other device counts. Each run is the real CLI in a subprocess."""

import glob
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.conftest import REPO

# The tests read checkpoints back without a target tree, which Orbax warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Sharding info not provided")

STEPS = 15
# LoRA with dropout on the tiny random-init model: resuming must restore params, Adam moments,
# the data order, the dropout RNG and rebuild the frozen base from the seed, or the bits differ.
# Two 832-byte rows per step keep each step long enough to be interrupted mid-run and cheap enough to run often.
ARGS = ["--config=configs/sycophancy.py:tiny", "--config.data.num_train_examples=64",
        "--config.data.global_batch_size=2",
        "--config.data.num_heldout_examples=8",
        f"--config.train.num_steps={STEPS}", "--config.checkpoint.save_every=3", "--config.train.log_every=1",
        "--config.lora.enabled=True", "--config.lora.dropout=0.1", "--config.optim.lr=3e-3"]


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _start(workdir, args=ARGS, log_name="run"):
  log = open(os.path.join(os.path.dirname(workdir), f"{os.path.basename(workdir)}-{log_name}.log"), "w")
  proc = subprocess.Popen([sys.executable, "-m", "inoc_jax.train", *args, f"--workdir={workdir}"], cwd=REPO,
                          env=_env(), stdout=log, stderr=subprocess.STDOUT, text=True)
  return proc, log.name


def _run(workdir, args=ARGS, log_name="run"):
  proc, log = _start(workdir, args, log_name)
  rc = proc.wait(timeout=600)
  output = open(log).read()
  assert rc == 0, output[-3000:]
  return output


def _steps_logged(workdir) -> int:
  path = os.path.join(workdir, "metrics.jsonl")
  return sum(1 for line in open(path) if '"train/loss"' in line) if os.path.exists(path) else 0


def _wait_for_steps(proc, workdir, k):
  deadline = time.time() + 300
  while _steps_logged(workdir) < k:
    assert proc.poll() is None, "the run ended before it could be interrupted"
    assert time.time() < deadline, "no training progress"
    time.sleep(0.02)


def _train_loss_steps(workdir) -> list[int]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [row["step"] for row in map(json.loads, f) if "train/loss" in row]


def _summary(workdir) -> dict:
  with open(os.path.join(workdir, "summary.json"), encoding="utf-8") as f:
    return json.loads(f.read(), parse_constant=lambda name: pytest.fail(f"summary.json holds {name}"))


def _final_arrays(workdir, step=STEPS) -> dict[str, np.ndarray]:
  """{item/path: array} of one checkpoint step, read back without any target structure."""
  arrays = {}
  for item in ("params", "optimizer"):
    tree = ocp.PyTreeCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), item))
    stack = [(item, tree)]
    while stack:
      prefix, node = stack.pop()
      if isinstance(node, dict):
        stack.extend((f"{prefix}/{k}", v) for k, v in node.items())
      else:
        arrays[prefix] = np.asarray(node)
  return arrays


def _assert_bit_identical(a, b):
  assert a.keys() == b.keys() and len(a) > 10
  for key in a:
    assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("uninterrupted") / "run")
  _run(workdir)
  return workdir, _final_arrays(workdir)


@pytest.mark.slow
def test_kill_9_at_a_random_step_then_restart_gives_bit_identical_params(uninterrupted, tmp_path):
  seed = int(time.time())
  kill_at = random.Random(seed).randint(5, STEPS - 6)
  workdir = str(tmp_path / "run")
  proc, log = _start(workdir, log_name="killed")
  _wait_for_steps(proc, workdir, kill_at)
  os.kill(proc.pid, signal.SIGKILL)
  assert proc.wait(timeout=60) == -signal.SIGKILL
  output = _run(workdir, log_name="resumed")
  resumed = re.search(r"resumed from checkpoint step (\d+)", output)
  assert resumed and 0 < int(resumed.group(1)) < STEPS, (seed, kill_at, output[-2000:])
  _assert_bit_identical(_final_arrays(workdir), uninterrupted[1])
  # One run, one record: each step logged once, the summary over both segments.
  assert _train_loss_steps(workdir) == list(range(1, STEPS + 1))
  assert _train_loss_steps(workdir) == _train_loss_steps(uninterrupted[0])
  summary, reference = _summary(workdir), _summary(uninterrupted[0])
  assert summary["first_loss"] == reference["first_loss"] and summary["final_loss"] == reference["final_loss"]
  assert summary["tokens_per_second"] > 0


@pytest.mark.slow
def test_sigterm_saves_exits_cleanly_and_its_resume_command_finishes_the_run(uninterrupted, tmp_path):
  workdir = str(tmp_path / "run")
  proc, log = _start(workdir, log_name="terminated")
  _wait_for_steps(proc, workdir, 6)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == 143
  output = open(log).read()
  assert "Traceback" not in output
  message = output.strip().splitlines()[-1]
  stopped = re.match(rf"SIGTERM received: stopped after step (\d+) of {STEPS}; checkpoint saved in (\S+)\. "
                     r"Resume with: (.*)$", message)
  assert stopped, message
  step = int(stopped.group(1))
  assert os.path.isdir(os.path.join(workdir, "checkpoints", str(step)))  # saved although 3 does not divide it
  command = shlex.split(stopped.group(3))
  assert command[:3] == ["python", "-m", "inoc_jax.train"] and f"--workdir={workdir}" in command
  done = subprocess.run([sys.executable, *command[1:]], cwd=REPO, env=_env(), capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"resumed from checkpoint step {step}" in done.stderr
  _assert_bit_identical(_final_arrays(workdir), uninterrupted[1])


@pytest.mark.slow
def test_truncated_latest_checkpoint_is_skipped_with_a_warning_and_training_redone(uninterrupted, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(uninterrupted[0], workdir)
  steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")))
  assert steps == [STEPS - 6, STEPS - 3, STEPS]  # keep = 3
  for path in glob.glob(os.path.join(workdir, "checkpoints", str(STEPS), "*", "**", "d", "*"), recursive=True):
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  output = _run(workdir, log_name="after-truncation")
  assert re.search(rf"WARNING checkpoint step {STEPS} .* is unreadable .*falling back", output), output[-3000:]
  assert f"resumed from checkpoint step {STEPS - 3}" in output
  assert os.listdir(os.path.join(workdir, "checkpoints-corrupt"))
  _assert_bit_identical(_final_arrays(workdir), uninterrupted[1])


def test_rerunning_a_finished_run_keeps_its_summary_and_metrics(uninterrupted, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(uninterrupted[0], workdir)
  output = _run(workdir, log_name="rerun")
  assert f"resumed from checkpoint step {STEPS}" in output
  summary, reference = _summary(workdir), _summary(uninterrupted[0])
  assert summary["first_loss"] is not None and summary["first_loss"] == reference["first_loss"]
  assert summary["final_loss"] == reference["final_loss"]
  assert _train_loss_steps(workdir) == list(range(1, STEPS + 1))


def test_resume_with_changed_data_settings_is_refused_unless_allowed(uninterrupted, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(uninterrupted[0], workdir)
  config_before = open(os.path.join(workdir, "config.json")).read()
  changed = [*ARGS, "--config.data.global_batch_size=4"]  # the later flag wins
  proc = subprocess.run([sys.executable, "-m", "inoc_jax.train", *changed, f"--workdir={workdir}"], cwd=REPO,
                        env=_env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 2, proc.stderr[-3000:]
  error = proc.stderr.strip().splitlines()[-1]
  assert error.startswith("error: ") and "data.global_batch_size 2 -> 4" in error, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert open(os.path.join(workdir, "config.json")).read() == config_before
  _run(workdir, [*changed, "--config.checkpoint.allow_resume_changes=True"], log_name="allowed")
  with open(os.path.join(workdir, "resumes.jsonl"), encoding="utf-8") as f:
    record = json.loads(f.readline())
  assert record["step"] == STEPS and "data.global_batch_size 2 -> 4" in record["changes"]
  assert open(os.path.join(workdir, "config.json")).read() == config_before


SAVE_ON_8 = """
import json, numpy as np, jax, optax
from flax import nnx
from inoc_jax.checkpoint import tree_codec
from inoc_jax.checkpoint.manager import Checkpointer
from inoc_jax.checkpoint.resume import run_meta
from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from inoc_jax.sharding.mesh import make_mesh
from inoc_jax.model.build import ModelSpec
from inoc_jax.training.train_state import init_train_state
from inoc_jax.training.train_step import StepOptions, TrainStep
arch = get_preset("tiny-llama")
spec = ModelSpec(lambda rngs: Transformer(arch, rngs=rngs), nnx.Param)
mesh = make_mesh({{"data": 1, "fsdp": 8, "tensor": 1}})
tx = optax.adamw(1e-2)
graphdef, state, shardings = init_train_state(spec, tx, mesh, 0)
rng = np.random.default_rng(0)
batch = dict(tokens=rng.integers(0, 512, (8, 16)).astype(np.int32), roles=np.full((8, 16), 4, np.int32),
             segment_ids=np.ones((8, 16), np.int32), positions=np.tile(np.arange(16, dtype=np.int32), (8, 1)))
state, _ = TrainStep(graphdef, tx, lambda s: 1e-2, StepOptions(), mesh, shardings)(state, batch)
jax.block_until_ready(state)
ckpt = Checkpointer("{directory}")
ckpt.save(1, state, data_iterator={{"epoch": 0, "position": 8}}, config={{"seed": 0}},
          run_meta=run_meta(arch, None, ""))
ckpt.close()
flat = {{"params/" + k: np.asarray(v) for k, v in zip(tree_codec.flat_paths(state.params),
                                                    jax.device_get(jax.tree.leaves(state.params)))}}
flat.update({{"opt/" + k: np.asarray(v) for k, v in zip(tree_codec.flat_paths(state.opt_state),
                                                      jax.device_get(jax.tree.leaves(state.opt_state)))}})
np.savez("{directory}/../saved.npz", **flat)
embedding = state.params["embedder"]["embedding"][...]
print(json.dumps(dict(shard=list(embedding.addressable_shards[0].data.shape), devices=jax.device_count())))
"""

RESTORE = """
import json, numpy as np, jax, optax
from flax import nnx
from inoc_jax.checkpoint import tree_codec
from inoc_jax.checkpoint.manager import Checkpointer
from inoc_jax.checkpoint.params import restore_params
from inoc_jax.checkpoint.resume import item_targets
from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from inoc_jax.sharding import rules
from inoc_jax.sharding.mesh import make_mesh
from inoc_jax.model.build import ModelSpec
from inoc_jax.training.train_state import abstract_train_state
arch = get_preset("tiny-llama")
spec = ModelSpec(lambda rngs: Transformer(arch, rngs=rngs), nnx.Param)
mesh = make_mesh({mesh})
_, abstract, shardings = abstract_train_state(spec, optax.adamw(1e-2), mesh, 0)
restored = Checkpointer("{directory}").restore_latest(*item_targets(abstract, shardings))
saved = np.load("{directory}/../saved.npz")
equal = all(np.array_equal(saved["params/" + k], np.asarray(v)) for k, v in
            zip(tree_codec.flat_paths(restored.params), jax.device_get(jax.tree.leaves(restored.params))))
opt = restored.optimizer["opt_state"]
equal &= all(np.array_equal(saved["opt/" + k], np.asarray(v)) for k, v in
             zip(tree_codec.flat_paths(opt), jax.device_get(jax.tree.leaves(opt))))
on_mesh = all(leaf.sharding.mesh.shape == mesh.shape and leaf.sharding.spec == rules.fit_spec(
    rules.spec_for(path), leaf.shape, mesh) for path, leaf in zip(tree_codec.flat_paths(restored.params),
                                                                   jax.tree.leaves(restored.params)))
evaluation = restore_params("{directory}", mesh)
eval_equal = all(np.array_equal(saved["params/" + k], np.asarray(v)) for k, v in
                 zip(tree_codec.flat_paths(evaluation.params), jax.device_get(jax.tree.leaves(evaluation.params))))
embedding = restored.params["embedder"]["embedding"][...]
print(json.dumps(dict(equal=bool(equal), on_mesh=bool(on_mesh), eval_equal=bool(eval_equal), step=restored.step,
                      shard=list(embedding.addressable_shards[0].data.shape), devices=jax.device_count())))
"""


def test_checkpoint_written_on_8_devices_restores_on_1_and_on_2x2x2(python_subprocess, tmp_path):
  directory = str(tmp_path / "checkpoints")
  saved = python_subprocess(SAVE_ON_8.format(directory=directory), devices=8)
  assert saved == {"shard": [512, 8], "devices": 8}  # fsdp=8 split d_model
  one = python_subprocess(RESTORE.format(directory=directory, mesh='{"data": -1}'), devices=1)
  assert one == {"equal": True, "on_mesh": True, "eval_equal": True, "step": 1, "shard": [512, 64], "devices": 1}
  cube = python_subprocess(RESTORE.format(directory=directory, mesh='{"data": 2, "fsdp": 2, "tensor": 2}'),
                           devices=8)
  assert cube == {"equal": True, "on_mesh": True, "eval_equal": True, "step": 1, "shard": [256, 32], "devices": 8}
