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
  summary = trainer.train_and_evaluate(_config("train.num_steps=30", "train.heldout_every=10"), str(tmp_path))
  assert summary.final_loss < summary.first_loss - 1.0
  assert summary.heldout_loss is not None and summary.heldout_loss < summary.first_loss
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  train_records = [r for r in records if "train/loss" in r]
  for key in ("loss", "supervised_token_count", "token_accuracy", "grad_norm", "learning_rate"):
    assert f"train/{key}" in train_records[0]
  assert any("heldout/loss" in r for r in records)
  assert os.listdir(tmp_path / "tensorboard")
  assert json.load(open(tmp_path / "summary.json"))["steps"] == 30


def test_packing_run_trains(tmp_path):
  summary = trainer.train_and_evaluate(_config("train.num_steps=6", "data.packing=True", "data.seq_len=768"),
                                       str(tmp_path))
  assert summary.steps == 6


def test_no_example_fits_is_a_data_error(tmp_path):
  with pytest.raises(DataError, match="raise data.seq_len"):
    trainer.train_and_evaluate(_config("data.seq_len=32"), str(tmp_path))
