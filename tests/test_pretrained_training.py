"""Acceptance: LoRA training of SmolLM2-135M-Instruct from the offline GGUF through the training CLI."""

import json
import os
import re
import subprocess
import sys

import pytest

from inoc_jax.model.config import get_preset
from inoc_jax.model.lora import LoraConfig, count_lora_params
from tests.conftest import REPO


@pytest.mark.slow
def test_train_cli_trains_lora_on_smollm2_offline(tmp_path):
  workdir = str(tmp_path / "run")
  env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1")
  proc = subprocess.run(
      [sys.executable, "-m", "inoc_jax.train", "--config=configs/sycophancy.py",
       "--config.model.checkpoint=smollm2-135m-instruct", "--config.lora.enabled=True",
       # A small, fast version of the default run: 2 steps of 2 rows.
       "--config.train.num_steps=2", "--config.data.global_batch_size=2", "--config.data.num_train_examples=8",
       "--config.data.num_heldout_examples=2", f"--workdir={workdir}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "architecture from" in proc.stderr and "SmolLM2-135M-Instruct.Q4_1.gguf" in proc.stderr
  trainable = re.search(r"trainable ([\d,]+) of ([\d,]+) parameters", proc.stderr)
  want = count_lora_params(get_preset("smollm2-135m"), LoraConfig(rank=8))
  assert int(trainable.group(1).replace(",", "")) == want == 2_442_240
  assert int(trainable.group(2).replace(",", "")) == want + 134_515_008
  assert "Finished 2 steps" in proc.stdout
  meta = json.load(open(os.path.join(workdir, "checkpoints", "2", "meta", "metadata")))
  assert meta["model_source"] == "smollm2-135m-instruct" and meta["model_config"]["num_layers"] == 30
  losses = [json.loads(line)["train/loss"] for line in open(os.path.join(workdir, "metrics.jsonl"))
            if "train/loss" in line]
  assert len(losses) == 2 and all(0 < loss < 20 for loss in losses)
