"""HF export: `python -m inoc_jax.export` round trips through our importer and through transformers."""

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from inoc_jax import config_lib, trainer
from inoc_jax.checkpoint.params import restore_params
from inoc_jax.export import export
from inoc_jax.weights.pretrained import open_pretrained
from tests.conftest import REPO
from tests.gguf_writer import write_gguf
from tests.weight_fixtures import assert_logits_close, fixture_dir, our_logits, reference, widen_vocab


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
  """3 LoRA steps (q, v, down; standard scaling) on the untied, RoPE-scaled tiny llama."""
  base = str(tmp_path_factory.mktemp("base"))
  widen_vocab(fixture_dir("llama"), base, 320)
  workdir = str(tmp_path_factory.mktemp("run"))
  config = config_lib.load_config(os.path.join(REPO, "configs", "sycophancy.py:tiny"), [
      "data.num_train_examples=32", "data.num_heldout_examples=8", f"model.checkpoint={base}", "lora.enabled=True",
      "lora.rank=4", "lora.rslora=False", "lora.targets=q,v,down", "optim.lr=3e-2", "train.num_steps=3"])
  trainer.train_and_evaluate(config, workdir)
  return base, workdir


def _batch():
  return reference("llama")  # token ids < 96 are valid in the widened vocabulary


def test_export_cli_writes_a_folder_our_importer_reads_back_identically(lora_run, tmp_path):
  _, workdir = lora_run
  out = str(tmp_path / "hf")
  proc = subprocess.run([sys.executable, "-m", "inoc_jax.export", f"--checkpoint={workdir}", f"--out={out}"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert (f"Exported {workdir} to {out} (model.safetensors, adapter/adapter_config.json, "
          "adapter/adapter_model.safetensors)") in proc.stdout
  assert sorted(os.listdir(out)) == ["adapter", "config.json", "generation_config.json", "model.safetensors"]
  config = json.load(open(os.path.join(out, "config.json")))
  assert config["architectures"] == ["LlamaForCausalLM"] and config["rope_scaling"]["rope_type"] == "llama3"
  assert "lm_head.weight" in load_file(os.path.join(out, "model.safetensors"))
  restored = restore_params(workdir)
  exported = open_pretrained(out)
  assert exported.model_config == restored.model_config
  batch = _batch()
  np.testing.assert_allclose(our_logits(exported.load_model(), batch), our_logits(restored.model(), batch),
                             atol=1e-5)


def test_bfloat16_and_sharded_exports(lora_run, tmp_path):
  _, workdir = lora_run
  files = [f for f in export(workdir, str(tmp_path / "bf16"), dtype="bfloat16", max_shard_bytes=40_000)
           if not f.startswith("adapter/")]
  assert len(files) > 1 and files[0] == f"model-00001-of-{len(files):05d}.safetensors"
  index = json.load(open(tmp_path / "bf16" / "model.safetensors.index.json"))
  assert set(index["weight_map"].values()) == set(files)
  assert json.load(open(tmp_path / "bf16" / "config.json"))["torch_dtype"] == "bfloat16"
  full = restore_params(workdir).params["layers"][0]["mlp"]["down_proj"]["kernel"][...]
  half = open_pretrained(str(tmp_path / "bf16")).load_model().layers[0].mlp.down_proj.kernel[...]
  np.testing.assert_array_equal(np.asarray(half), np.asarray(full).astype("bfloat16").astype(np.float32))


def test_gguf_converts_to_the_hf_weights_it_came_from(tmp_path, caplog):
  write_gguf(fixture_dir("llama"), str(tmp_path / "l.gguf"), rope_original_context=16)
  with caplog.at_level(logging.WARNING, logger="inoc_jax"):
    export(str(tmp_path / "l.gguf"), str(tmp_path / "hf"))
  assert any("tokenizer files not written" in r.message for r in caplog.records)  # this GGUF has no tokenizer
  assert "tokenizer.json" not in os.listdir(tmp_path / "hf")
  ours, theirs = load_file(str(tmp_path / "hf" / "model.safetensors")), load_file(
      os.path.join(fixture_dir("llama"), "model.safetensors"))
  assert ours.keys() == theirs.keys()
  for name in ours:  # q/k rows back in HF order
    np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=1e-6, err_msg=name)


def test_tokenizer_files_of_an_hf_source_are_copied(tmp_path):
  source = tmp_path / "model"
  shutil.copytree(fixture_dir("qwen2"), source)
  (source / "tokenizer.json").write_text('{"version": "1.0"}')
  (source / "tokenizer_config.json").write_text('{"chat_template": "{{ messages }}"}')
  export(str(source), str(tmp_path / "out"))
  assert (tmp_path / "out" / "tokenizer.json").read_text() == '{"version": "1.0"}'
  assert (tmp_path / "out" / "tokenizer_config.json").exists()


def test_the_peft_adapter_adds_up_to_the_merged_export(lora_run, tmp_path):
  """PEFT's rule, W' = W + scaling * B @ A with scaling = alpha / r, on the exported tensors of every module."""
  base, workdir = lora_run
  export(workdir, str(tmp_path / "hf"))
  adapter = tmp_path / "hf" / "adapter"
  config = json.load(open(adapter / "adapter_config.json"))
  assert (config["peft_type"], config["r"], config["lora_alpha"], config["use_rslora"]) == ("LORA", 4, 16.0, False)
  assert config["target_modules"] == ["down_proj", "q_proj", "v_proj"] and config["base_model_name_or_path"] == base
  tensors = load_file(str(adapter / "adapter_model.safetensors"))
  merged, original = load_file(str(tmp_path / "hf" / "model.safetensors")), load_file(f"{base}/model.safetensors")
  modules = sorted({name.split(".lora_")[0] for name in tensors})
  assert len(modules) == 3 * 2 and len(tensors) == 2 * len(modules)  # 3 targets x 2 layers
  for module in modules:
    a, b = tensors[f"{module}.lora_A.weight"], tensors[f"{module}.lora_B.weight"]
    weight = module[len("base_model.model."):] + ".weight"
    assert a.shape == (4, original[weight].shape[1]) and b.shape == (original[weight].shape[0], 4)
    np.testing.assert_allclose(merged[weight], original[weight] + (16.0 / 4) * b @ a, atol=1e-5)
  assert np.abs(tensors[f"{modules[0]}.lora_B.weight"]).max() > 0  # trained, not the zero init


def test_live_peft_loads_the_adapter_with_our_logits(lora_run, tmp_path):
  pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  peft = pytest.importorskip("peft")
  from tests.fixtures.make_weight_fixtures import hf_logits  # pylint: disable=g-import-not-at-top
  base, workdir = lora_run
  export(workdir, str(tmp_path / "hf"))
  model = transformers.AutoModelForCausalLM.from_pretrained(base, attn_implementation="eager")
  model = peft.PeftModel.from_pretrained(model, str(tmp_path / "hf" / "adapter")).eval()
  batch = _batch()
  assert_logits_close(hf_logits(model, batch), our_logits(restore_params(workdir).model(), batch), batch["mask"])


def test_live_transformers_loads_the_export_with_the_same_logits(lora_run, tmp_path):
  pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from tests.fixtures.make_weight_fixtures import hf_logits  # pylint: disable=g-import-not-at-top
  _, workdir = lora_run
  export(workdir, str(tmp_path / "hf"))
  hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"), attn_implementation="eager").eval()
  batch = _batch()
  restored = restore_params(workdir)
  ours = our_logits(restored.model(), batch)
  assert_logits_close(hf_logits(hf, batch), ours, batch["mask"])
  base = our_logits(open_pretrained(lora_run[0]).load_model(), batch)
  assert np.abs(ours - base)[batch["mask"] == 1].max() > 1e-3  # the export carries the trained adapters
