"""Importer internals: layouts and slice reads, GGUF dequantisers, sharded files and devices, errors."""

import json
import os
import shutil
import subprocess
import sys

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from inoc_jax.errors import CheckpointError
from inoc_jax.weights import dequant, layout as L
from inoc_jax.weights.key_maps import GGUF_KEY_MAPS, HF_KEY_MAPS
from inoc_jax.weights.pretrained import open_pretrained
from tests.conftest import REPO
from tests.weight_fixtures import assert_logits_close, fixture_dir, our_logits, reference

LAYOUT_CASES = [
    ("q", L.TO_HEADS, (12, 3, 4)),                 # stored [12, 12] -> [d=12, heads=3, hd=4]
    ("o", L.FROM_HEADS, (3, 4, 12)),
    ("mlp", L.LINEAR, (12, 20)),
    ("bias", L.BIAS_HEADS, (3, 4)),
    ("norm", L.SAME, (12,)),
    ("embedding", L.SAME, (10, 12)),
    ("gguf_q", GGUF_KEY_MAPS["llama"].param_for("blk.0.attn_q.weight")[1], (12, 3, 4)),
    ("gguf_gemma_norm", GGUF_KEY_MAPS["gemma"].param_for("blk.0.attn_norm.weight")[1], (12,)),
]


def _blocks(shape, rng):
  """Random block indices along each axis, in the slice form jax passes to callbacks."""
  for _ in range(12):
    index = []
    for n in shape:
      a, b = sorted(rng.choice(n + 1, 2, replace=False))
      index.append(slice(int(a), int(b)))
    yield tuple(index)


@pytest.mark.parametrize("name,layout,ours", LAYOUT_CASES, ids=[c[0] for c in LAYOUT_CASES])
def test_a_block_read_from_its_stored_rectangle_equals_the_slice_of_the_whole(name, layout, ours):
  rng = np.random.default_rng(0)
  stored = rng.normal(size=layout.stored_shape(ours)).astype(np.float32)
  whole = layout.to_block(stored, ours, tuple(slice(None) for _ in ours))
  assert whole.shape == ours
  for index in _blocks(ours, rng):
    rect = layout.stored_slices(ours, index)
    np.testing.assert_array_equal(layout.to_block(stored[rect], ours, index), whole[index], err_msg=str(index))
  # Export inverts import (exactly, except for float rounding of Gemma's w + 1 - 1).
  np.testing.assert_allclose(layout.to_stored(whole), stored, rtol=0, atol=1e-6)


def test_layouts_put_hf_rows_where_the_model_expects_them():
  heads, hd, d = 3, 4, 5
  q_hf = np.arange(heads * hd * d, dtype=np.float32).reshape(heads * hd, d)  # [out, in]
  ours = L.TO_HEADS.to_block(q_hf, (d, heads, hd), (slice(None),) * 3)
  assert ours[2, 1, 3] == q_hf[1 * hd + 3, 2]      # kernel[in, head, dim] = W[head*hd + dim, in]
  o_hf = np.arange(d * heads * hd, dtype=np.float32).reshape(d, heads * hd)
  ours = L.FROM_HEADS.to_block(o_hf, (heads, hd, d), (slice(None),) * 3)
  assert ours[2, 1, 4] == o_hf[4, 2 * hd + 1]
  interleaved = np.array([0, 10, 1, 11, 2, 12], np.float32)  # llama.cpp: (x0, y0, x1, y1, x2, y2)
  np.testing.assert_array_equal(L.rope_interleaved_to_halves(interleaved), [0, 1, 2, 10, 11, 12])


def test_key_maps_round_trip_names():
  hf = HF_KEY_MAPS["qwen2"]
  assert hf.param_for("model.layers.11.self_attn.k_proj.bias")[0] == "layers/11/attn/k_proj/bias"
  assert hf.stored_for("layers/3/mlp/down_proj/kernel")[0] == "model.layers.3.mlp.down_proj.weight"
  assert hf.param_for("model.layers.0.self_attn.o_proj.bias") is None  # no such parameter: refused upstream
  assert GGUF_KEY_MAPS["llama"].stored_for("layers/0/attn/o_proj/kernel")[0] == "blk.0.attn_output.weight"


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_dequantisers_equal_gguf_reference(qtype):
  x = np.random.default_rng(1).normal(size=(5, 256)).astype(np.float32)
  raw = gguf.quants.quantize(x, gguf.GGMLQuantizationType[qtype])
  ours = dequant.DEQUANTISERS[qtype](raw)
  np.testing.assert_array_equal(ours, gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype]))
  assert np.abs(ours - x).max() < 0.5  # and it is a dequantisation, not noise


@pytest.mark.parametrize("qtype,scale_bytes", [("Q4_K", (0, 4)), ("Q6_K", (208, 210))])
def test_k_quant_dequantisers_equal_gguf_reference(qtype, scale_bytes):
  # gguf-py cannot quantise K-quants; random blocks with finite f16 scales exercise every bit field.
  rng = np.random.default_rng(2)
  block_values, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
  raw = rng.integers(0, 256, (4, 2, block_bytes), dtype=np.uint8)
  a, b = scale_bytes
  raw[..., a:b] = rng.normal(size=(4, 2, (b - a) // 2)).astype(np.float16).view(np.uint8)
  raw = raw.reshape(4, -1)
  ref = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype])
  np.testing.assert_array_equal(dequant.DEQUANTISERS[qtype](raw), ref)
  assert ref.shape == (4, 2 * block_values)


def test_half_precision_formats():
  x = np.random.default_rng(3).normal(size=(3, 8)).astype(np.float32)
  np.testing.assert_array_equal(dequant.f16(x.astype(np.float16).view(np.uint8)), x.astype(np.float16))
  raw = gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16)
  np.testing.assert_array_equal(dequant.bf16(raw), gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.BF16))


def test_quantised_gguf_loads_dequantised_weights(tmp_path):
  from tests.gguf_writer import write_gguf  # pylint: disable=g-import-not-at-top
  path = write_gguf(fixture_dir("qwen2"), str(tmp_path / "q8.gguf"), matrix_type="Q8_0")
  pretrained = open_pretrained(path)
  model = pretrained.load_model()
  hf = load_file(os.path.join(fixture_dir("qwen2"), "model.safetensors"))
  want = gguf.quants.dequantize(gguf.quants.quantize(hf["model.layers.1.mlp.up_proj.weight"],
                                                     gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0)
  np.testing.assert_array_equal(np.asarray(model.layers[1].mlp.up_proj.kernel[...]), want.T)
  ref = reference("qwen2")
  real = ref["mask"] == 1
  error = np.abs(our_logits(model, ref) - ref["logits"])[real].max() / np.abs(ref["logits"][real]).max()
  assert error < 0.05  # 8-bit quantisation error only


def test_sharded_safetensors_with_index(tmp_path):
  tensors = load_file(os.path.join(fixture_dir("llama"), "model.safetensors"))
  names = sorted(tensors)
  halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
  for file, part in halves.items():
    save_file({n: tensors[n] for n in part}, str(tmp_path / file), metadata={"format": "pt"})
  json.dump({"metadata": {}, "weight_map": {n: f for f, part in halves.items() for n in part}},
            open(tmp_path / "model.safetensors.index.json", "w"))
  shutil.copy(os.path.join(fixture_dir("llama"), "config.json"), tmp_path / "config.json")
  ref = reference("llama")
  assert_logits_close(our_logits(open_pretrained(str(tmp_path)).load_model(), ref), ref["logits"], ref["mask"])
  os.remove(tmp_path / "model-00002-of-00002.safetensors")
  with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors which are missing"):
    open_pretrained(str(tmp_path))


def _copy_fixture(tmp_path, family, **config_changes):
  shutil.copy(os.path.join(fixture_dir(family), "model.safetensors"), tmp_path / "model.safetensors")
  cfg = json.load(open(os.path.join(fixture_dir(family), "config.json")))
  cfg.update(config_changes)
  json.dump(cfg, open(tmp_path / "config.json", "w"))
  return str(tmp_path)


@pytest.mark.parametrize("changes,message", [
    ({"vocab_size": 100}, r"model.embed_tokens.weight .* has shape \(96, 32\) but parameter embedder/embedding "
                          r"needs \(100, 32\)"),
    ({"num_hidden_layers": 3}, r"lacks tensors for \d+ parameters, e.g. layers/2/"),
    ({"head_dim": 4}, r"self_attn.*_proj.weight .* has shape .* but parameter layers/0/attn/"),
    ({"model_type": "mixtral"}, "model_type 'mixtral'; inoc_jax loads llama, mistral, qwen2, qwen3, gemma, gemma2"),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}}, "rope type 'yarn'"),
    ({"attention_bias": True}, "attention_bias=true"),
])
def test_config_weight_mismatches_name_the_tensor_and_both_shapes(tmp_path, changes, message):
  with pytest.raises(CheckpointError, match=message):
    open_pretrained(_copy_fixture(tmp_path, "llama", **changes)).load_model()


def test_untied_config_on_tied_weights_names_the_missing_head(tmp_path):
  with pytest.raises(CheckpointError, match=r"lm_head/kernel \(stored as lm_head.weight\)"):
    open_pretrained(_copy_fixture(tmp_path, "smollm2", tie_word_embeddings=False)).load_model()


def test_unknown_tensors_are_refused(tmp_path):
  path = _copy_fixture(tmp_path, "smollm2")
  tensors = load_file(os.path.join(path, "model.safetensors"))
  tensors["model.layers.0.self_attn.o_proj.bias"] = np.zeros(32, np.float32)
  save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
  with pytest.raises(CheckpointError, match="o_proj.bias"):
    open_pretrained(path).load_model()


@pytest.mark.parametrize("damage", ["empty", "header_only", "half", "text"])
def test_damaged_safetensors_is_a_clear_error(tmp_path, damage):
  path = _copy_fixture(tmp_path, "smollm2")
  weights = os.path.join(path, "model.safetensors")
  data = open(weights, "rb").read()
  cut = {"empty": b"", "header_only": data[:8 + int.from_bytes(data[:8], "little")], "half": data[:len(data) // 2],
         "text": b"<html>rate limited</html>"}[damage]
  open(weights, "wb").write(cut)
  with pytest.raises(CheckpointError, match=r"model.safetensors is not a readable safetensors file .*copy or "
                                            r"download it again"):
    open_pretrained(path).load_model()


def test_non_gguf_file_is_a_clear_error(tmp_path):
  bad = tmp_path / "broken.gguf"
  bad.write_bytes(b"not a gguf file at all")
  with pytest.raises(CheckpointError, match="Cannot read .*broken.gguf.* as a GGUF file"):
    open_pretrained(str(bad))


def test_loading_on_many_devices_reads_shards_and_gives_the_same_logits(python_subprocess):
  code = """
  import json, numpy as np, jax
  from inoc_jax.sharding.mesh import make_mesh
  from inoc_jax.weights.pretrained import open_pretrained
  from tests.gguf_writer import write_gguf
  from tests.weight_fixtures import fixture_dir, our_logits, reference
  import tempfile, os
  out = {}
  mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  gguf_path = write_gguf(fixture_dir("llama"), os.path.join(tempfile.mkdtemp(), "l.gguf"), rope_original_context=16)
  for name, spec in (("hf", fixture_dir("llama")), ("gguf", gguf_path)):
    model = open_pretrained(spec).load_model(mesh)
    q = model.layers[0].attn.q_proj.kernel[...]
    ref = reference("llama")
    diff = np.abs(our_logits(model, ref) - ref["logits"])[ref["mask"] == 1].max()
    out[name] = dict(diff=float(diff), q_spec=str(q.sharding.spec), q_shard=list(q.addressable_shards[0].data.shape))
  print(json.dumps(out))
  """
  result = python_subprocess(code, devices=8)
  for name in ("hf", "gguf"):
    assert result[name]["diff"] < 1e-4
    assert result[name]["q_shard"] == [16, 2, 8]  # [d/fsdp, heads/tensor, head_dim]: a real shard


def test_hub_id_offline_is_one_clear_error(monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  with pytest.raises(CheckpointError, match="Cannot fetch 'google/gemma-2b-it' from the Hugging Face Hub"):
    open_pretrained("google/gemma-2b-it")


def test_bad_model_checkpoint_is_a_one_line_cli_error():
  proc = subprocess.run([sys.executable, "-m", "inoc_jax.train", "--config=configs/sycophancy.py",
                         "--config.model.checkpoint=/no/such/model.gguf"], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("error: Model source '/no/such/model.gguf' not found")
