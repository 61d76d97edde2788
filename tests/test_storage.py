"""Run-directory I/O on local disks and bucket URLs (memory:// stands in for gs://)."""

import json
import uuid

import fsspec
import pytest

from inoc_jax import config_lib, trainer
from inoc_jax.errors import ConfigError
from inoc_jax.runtime import storage
from tests.conftest import REPO


def _memory_dir():
  return f"memory://runs/{uuid.uuid4().hex}"


def test_local_line_log_appends_across_reopen(tmp_path):
  path = str(tmp_path / "m.jsonl")
  log = storage.LineLog(path)
  log.write('{"a": 1}')
  log.close()
  log = storage.LineLog(path)
  log.write('{"a": 2}\n')
  log.close()
  assert (tmp_path / "m.jsonl").read_text() == '{"a": 1}\n{"a": 2}\n'


def test_remote_line_log_rewrites_the_object_and_keeps_earlier_lines():
  base = _memory_dir()
  storage.makedirs(base)
  path = storage.join(base, "metrics.jsonl")
  assert path == base + "/metrics.jsonl"
  log = storage.LineLog(path, flush_seconds=3600)
  log.write("one")      # the first line is flushed at once
  log.write("two")      # later lines wait for the interval or close()
  assert storage.read_text(path) == "one\n"
  log.close()
  assert storage.read_text(path) == "one\ntwo\n"
  resumed = storage.LineLog(path, flush_seconds=0)
  resumed.write("three")
  assert storage.read_text(path) == "one\ntwo\nthree\n"


def test_checkpoints_on_a_scheme_orbax_cannot_write_are_a_config_error():
  config = config_lib.load_config(f"{REPO}/configs/sycophancy.py", ["train.num_steps=1"])
  with pytest.raises(ConfigError, match="Orbax needs a local path or a gs:// URL"):
    trainer.train_and_evaluate(config, _memory_dir())


def test_unknown_protocol_is_a_config_error():
  with pytest.raises(ConfigError, match="nosuchfs://"):
    storage.makedirs("nosuchfs://bucket/run")


def test_training_writes_its_files_to_a_bucket_url():
  workdir = _memory_dir()
  config = config_lib.load_config(f"{REPO}/configs/sycophancy.py", [
      "data.num_train_examples=32", "data.num_heldout_examples=8", "train.num_steps=3", "train.tensorboard=False",
      "train.log_every=1", "checkpoint.enabled=False"])  # Orbax writes local paths and gs:// only, not memory://
  trainer.train_and_evaluate(config, workdir)
  fs = fsspec.filesystem("memory")
  names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(workdir.split("://", 1)[1], detail=False))
  assert names == ["config.json", "metrics.jsonl", "summary.json"]
  assert json.loads(storage.read_text(workdir + "/summary.json"))["steps"] == 3
  records = [json.loads(line) for line in storage.read_text(workdir + "/metrics.jsonl").splitlines()]
  assert [r["step"] for r in records if "train/loss" in r] == [1, 2, 3]
