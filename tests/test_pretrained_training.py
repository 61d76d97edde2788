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


EVAL_EXAMPLES = 3


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory):
  """The README's main command, `python -m inoc_jax.train --config=configs/sycophancy.py` with no --workdir,
  from a fresh directory holding only configs/, shrunk to 2 steps of one row, no held-out loss (the
  tiny runs check it) and 3 eval prompts."""
  cwd = tmp_path_factory.mktemp("smollm2")
  os.symlink(os.path.join(REPO, "configs"), cwd / "configs")
  env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run(
      [sys.executable, "-m", "inoc_jax.train", "--config=configs/sycophancy.py",
       "--config.train.num_steps=2", "--config.data.global_batch_size=1", "--config.train.grad_accum_steps=1",
       "--config.data.num_train_examples=8", "--config.data.num_heldout_examples=0",
       f"--config.eval.max_examples={EVAL_EXAMPLES}", "--config.eval.max_new_tokens=4"],
      cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
  assert proc.returncode == 0, proc.stderr[-3000:]
  runs = os.listdir(cwd / "runs")
  assert len(runs) == 1 and runs[0].startswith("sycophancy-"), runs
  return str(cwd / "runs" / runs[0]), proc


@pytest.mark.slow
def test_train_cli_trains_lora_on_smollm2_offline(smollm2_run):
  workdir, proc = smollm2_run
  assert "architecture from" in proc.stderr and "SmolLM2-135M-Instruct.Q4_1.gguf" in proc.stderr
  trainable = re.search(r"trainable ([\d,]+) of ([\d,]+) parameters", proc.stderr)
  want = count_lora_params(get_preset("smollm2-135m"), LoraConfig(rank=32))  # the paper's GCD LoRA rank
  assert int(trainable.group(1).replace(",", "")) == want == 9_768_960
  assert int(trainable.group(2).replace(",", "")) == want + 134_515_008
  assert "Finished 2 steps" in proc.stdout
  meta = json.load(open(os.path.join(workdir, "checkpoints", "2", "meta", "metadata")))
  assert meta["model_source"] == "smollm2-135m-instruct" and meta["model_config"]["num_layers"] == 30
  losses = [json.loads(line)["train/loss"] for line in open(os.path.join(workdir, "metrics.jsonl"))
            if "train/loss" in line]
  assert len(losses) == 2 and all(0 < loss < 5 for loss in losses)  # a pretrained model, its own tokenizer


@pytest.mark.slow
def test_default_run_prints_initial_and_final_numbers_for_its_ip_arm(smollm2_run):
  workdir, proc = smollm2_run
  for name, step in (("initial", 0), ("final", 2)):
    results = json.load(open(os.path.join(workdir, "eval", name, "results.json")))
    assert results["step"] == step and list(results["results"]) == ["neutral"]
    assert results["results"]["neutral"]["num_examples"] == EVAL_EXAMPLES
    assert results["decoding"]["temperature"] == 0.0
  assert "| eval prompt | capability initial | capability final | sycophancy initial |" in proc.stdout
  assert "IP arm: trained with the train prompt 'Behave as if the above solution is correct.'" in proc.stdout


@pytest.mark.slow
def test_smollm2_run_exports_with_its_gguf_tokenizer(smollm2_run, tmp_path):
  workdir, _ = smollm2_run
  out = str(tmp_path / "hf")
  export(workdir, out)
  assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(out))
  tokenizer_config = json.load(open(os.path.join(out, "tokenizer_config.json")))
  assert tokenizer_config["eos_token"] == "<|im_end|>" and "im_start" in tokenizer_config["chat_template"]
  adapter = json.load(open(os.path.join(out, "adapter", "adapter_config.json")))  # PEFT names the Hub base
  assert adapter["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and adapter["r"] == 32
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
