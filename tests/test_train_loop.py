"""End-to-end tiny training runs through the library entry point."""

import json
import os

import pytest

from inoc_jax import config_lib, trainer
from inoc_jax.errors import DataError
from tests.conftest import REPO


def _config(*overrides):
  return config_lib.load_config(os.path.join(REPO, "configs", "sycophancy.py:tiny"),
                                ["data.num_train_examples=96", "data.num_heldout_examples=16", *overrides])


def test_tiny_run_lowers_loss_and_writes_logs(tmp_path):
  # The organism's 32-token rows: the same loop as the GCD presets' 832-byte rows at a fraction of the cost.
  config = config_lib.load_config(os.path.join(REPO, "configs", "organism.py:base"), [
      "data.num_train_examples=256", "data.num_heldout_examples=32", "train.num_steps=30", "train.heldout_every=10",
      "train.log_every=5", "train.tensorboard=True", "eval.at_end=False", "optim.lr=3e-3"])
  summary = trainer.train_and_evaluate(config, str(tmp_path))
  assert summary.final_loss < summary.first_loss - 1.0
  assert summary.heldout_loss is not None and summary.heldout_loss < summary.first_loss
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  train_records = [r for r in records if "train/loss" in r]
  for key in ("loss", "supervised_token_count", "token_accuracy", "grad_norm", "learning_rate"):
    assert f"train/{key}" in train_records[0]
  assert any("heldout/loss" in r for r in records)
  assert os.listdir(tmp_path / "tensorboard")
  assert json.load(open(tmp_path / "summary.json"))["steps"] == 30


def test_packing_run_trains_and_heldout_every_without_heldout_data_is_skipped(tmp_path):
  config = config_lib.load_config(os.path.join(REPO, "configs", "organism.py"), [
      "data.num_train_examples=64", "train.num_steps=6", "data.packing=True", "data.seq_len=96",
      "data.global_batch_size=4", "train.heldout_every=2", "eval.at_end=False"])
  assert config.data.num_heldout_examples == 0
  summary = trainer.train_and_evaluate(config, str(tmp_path))
  assert summary.steps == 6 and summary.heldout_loss is None


def test_no_example_fits_is_a_data_error(tmp_path):
  with pytest.raises(DataError, match="raise data.seq_len"):
    trainer.train_and_evaluate(_config("data.seq_len=32"), str(tmp_path))
