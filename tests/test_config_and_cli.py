"""Config loading, presets, overrides and validation; one-line CLI errors."""

import os
import subprocess
import sys

import pytest

from inoc_jax import config_lib
from inoc_jax.errors import ConfigError
from inoc_jax.sharding.mesh import resolve_mesh_shape
from tests.conftest import REPO

CONFIGS = os.path.join(REPO, "configs")


def test_presets_and_overrides():
  c = config_lib.load_config(os.path.join(CONFIGS, "sycophancy.py:tiny_ip"), ["optim.lr=0.5", "mesh.fsdp=1"])
  assert c.preset == "tiny_ip"
  assert c.data.train_prompt == "Behave as if the above solution is correct."
  assert c.optim.lr == 0.5
  default = config_lib.load_config(os.path.join(CONFIGS, "sycophancy.py:tiny"))
  assert default.preset == "tiny" and default.data.train_prompt == ""


def test_unknown_preset_names_the_choices():
  with pytest.raises(ConfigError, match="Unknown preset 'nope'.*choose one of default, neutral, tiny, tiny_ip"):
    config_lib.load_config(os.path.join(CONFIGS, "sycophancy.py:nope"))


@pytest.mark.parametrize("overrides,message", [
    (["data.global_batch_size=6", "mesh.data=4"], "not divisible by the data-parallel size 4"),
    (["data.global_batch_size=8", "train.grad_accum_steps=3"], "not divisible by train.grad_accum_steps=3"),
    (["train.num_steps=-1"], "train.num_steps must be >= 0"),
    (["mesh.data=-1", "mesh.fsdp=-1"], "more than one -1"),
    (["mesh.data=3"], "needs 3 devices but 4 are available"),
    (["model.preset=gpt-9"], "model.preset 'gpt-9' is unknown"),
    (["model.dtype=float16"], "model.dtype must be one of"),
])
def test_validation_messages(overrides, message):
  c = config_lib.load_config(os.path.join(CONFIGS, "sycophancy.py:tiny"), overrides)
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(c, num_devices=4)


def test_valid_config_passes_validation():
  c = config_lib.load_config(os.path.join(CONFIGS, "sycophancy.py:tiny"), ["mesh.fsdp=2"])
  config_lib.validate(c, num_devices=4)


def test_mesh_fills_minus_one():
  assert resolve_mesh_shape({"data": -1, "fsdp": 2, "tensor": 2}, 8) == (2, 2, 2)
  assert resolve_mesh_shape({"data": 1, "fsdp": -1, "tensor": 1}, 8) == (1, 8, 1)


@pytest.mark.parametrize("args,message", [
    (["--config=configs/sycophancy.py:nope"], "Unknown preset 'nope'"),
    (["--config=configs/missing.py"], "cannot load the config file"),
    (["--config=configs/sycophancy.py:tiny", "--config.optim.lrr=1"], "bad --config override"),
    (["--config=configs/sycophancy.py:tiny", "--config.train.num_steps=-2"], "train.num_steps must be >= 0"),
    (["--config=configs/sycophancy.py:tiny", "--config.mesh.fsdp=2"],
     "XLA_FLAGS=--xla_force_host_platform_device_count=2"),
])
def test_cli_errors_are_one_line(args, message):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run([sys.executable, "-m", "inoc_jax.train", *args], capture_output=True, text=True,
                        cwd=REPO, timeout=120, env=dict(env, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 2
  err = proc.stderr.strip().splitlines()
  assert err[-1].startswith("error: ") and message in err[-1]
  assert "Traceback" not in proc.stderr
