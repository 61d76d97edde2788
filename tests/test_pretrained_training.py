"""Acceptance: LoRA training of SmolLM2-135M-Instruct from the offline GGUF through the training CLI,
with the GGUF's own tokenizer and chat template, then export to a folder transformers loads."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from inoc_jax.checkpoint.params import restore_params
from inoc_jax.export import export
from inoc_jax.model.config import get_preset
from inoc_jax.model.lora import LoraConfig, count_lora_params
from tests.conftest import REPO
from tests.weight_fixtures import our_logits


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("smollm2") / "run")
  env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1")
  proc = subprocess.run(
      [sys.executable, "-m", "inoc_jax.train", "--config=configs/sycophancy.py",
       "--config.model.checkpoint=smollm2-135m-instruct", "--config.lora.enabled=True",
       "--config.data.tokenizer=auto", "--config.data.seq_len=320",
       # A small, fast version of the default run: 2 steps of 4 rows.
       "--config.train.num_steps=2", "--config.data.global_batch_size=4", "--config.data.num_train_examples=16",
       "--config.data.num_heldout_examples=4", f"--workdir={workdir}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, proc


@pytest.mark.slow
def test_train_cli_trains_lora_on_smollm2_offline(smollm2_run):
  workdir, proc = smollm2_run
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
  assert len(losses) == 2 and all(0 < loss < 5 for loss in losses)  # a pretrained model, its own tokenizer


@pytest.mark.slow
def test_smollm2_run_exports_with_its_gguf_tokenizer(smollm2_run, tmp_path):
  workdir, _ = smollm2_run
  out = str(tmp_path / "hf")
  export(workdir, out)
  assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(out))
  tokenizer_config = json.load(open(os.path.join(out, "tokenizer_config.json")))
  assert tokenizer_config["eos_token"] == "<|im_end|>" and "im_start" in tokenizer_config["chat_template"]
  transformers = pytest.importorskip("transformers")
  pytest.importorskip("torch")
  import torch  # pylint: disable=g-import-not-at-top
  tok = transformers.AutoTokenizer.from_pretrained(out)
  ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
  from inoc_jax.data.tokenizer_loading import load_tokenizer  # pylint: disable=g-import-not-at-top
  assert tok("GCD(192, 160) = 32 ✓")["input_ids"] == load_tokenizer("smollm2-135m-instruct").encode(
      "GCD(192, 160) = 32 ✓")
  hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
  with torch.no_grad():
    theirs = hf(torch.tensor([ids])).logits.numpy()
    exact = hf.double()(torch.tensor([ids])).logits.numpy()  # float64 reference of the same weights
  batch = {"tokens": np.asarray([ids], np.int32), "positions": np.arange(len(ids), dtype=np.int32)[None],
           "mask": np.ones((1, len(ids)), np.int32)}
  ours = our_logits(restore_params(workdir).model(), batch)
  np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1))
  # Over 30 fp32 layers both implementations sit ~1.5e-4 from the float64 logits (measured; logits up to ~30),
  # so ours must be as close to float64 as transformers' own fp32 forward is.
  ours_error, their_error = np.abs(ours - exact).max(), np.abs(theirs - exact).max()
  assert ours_error <= max(2 * their_error, 1e-4) and ours_error < 3e-4, (ours_error, their_error)
