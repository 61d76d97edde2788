"""Logit parity with transformers: tiny random models of every family and the real SmolLM2-135M GGUF.

The default checks compare against the committed fixtures (no torch needed);
the `live` checks recompute the reference with transformers when it imports.
Regenerate the fixtures with `python tests/fixtures/make_weight_fixtures.py`.
"""

import json
import os

import numpy as np
import pytest

from inoc_jax.weights.pretrained import open_pretrained
from tests.gguf_writer import write_gguf
from tests.weight_fixtures import (FAMILIES, FIXTURES, GGUF_FAMILIES, assert_logits_close, fixture_dir, our_logits,
                                   reference)


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_checkpoint_logits_match_transformers_fixture(family):
  ref = reference(family)
  model = open_pretrained(fixture_dir(family)).load_model()
  assert_logits_close(our_logits(model, ref), ref["logits"], ref["mask"])


def test_hf_configs_map_each_family_switch():
  cfgs = {f: open_pretrained(fixture_dir(f)).model_config for f in FAMILIES}
  assert cfgs["llama"].rope_scaling is not None and cfgs["llama"].rope_scaling.original_max_position == 16
  assert not cfgs["llama"].tie_embeddings and cfgs["smollm2"].tie_embeddings
  assert cfgs["qwen2"].qkv_bias and not cfgs["llama"].qkv_bias
  g = cfgs["gemma"]
  assert (g.family, g.norm_plus_one, g.embed_scale, g.activation, g.head_dim, g.num_kv_heads) == (
      "gemma", True, True, "gelu_tanh", 16, 1)
  m = cfgs["mistral"]
  assert (m.sliding_window, m.layer_types, m.is_sliding(0), m.is_sliding(1)) == (4, (), True, True)
  q3 = cfgs["qwen3"]
  assert q3.qk_norm and not q3.qkv_bias and q3.head_dim == 16 and not q3.post_norms
  g2 = cfgs["gemma2"]
  assert (g2.post_norms, g2.attn_logit_softcap, g2.final_logit_softcap, g2.query_scale, g2.qk_norm) == (
      True, 2.0, 5.0, 24.0, False)
  assert (g2.sliding_window, g2.layer_types) == (4, ("sliding", "full"))
  g3 = cfgs["gemma3"]
  assert (g3.qk_norm, g3.post_norms, g3.attn_logit_softcap, g3.local_rope_theta, g3.rope_theta) == (
      True, True, None, 10000.0, 1000000.0)
  assert g3.rope_scaling.kind == "linear" and g3.rope_scaling.factor == 8.0 and g3.layer_types == ("sliding", "full")


@pytest.mark.parametrize("family", GGUF_FAMILIES)
def test_gguf_written_like_llama_cpp_loads_to_the_same_logits(family, tmp_path):
  # original_context_length: llama.cpp keeps only per-frequency factors for llama3 scaling.
  path = write_gguf(fixture_dir(family), str(tmp_path / f"{family}.gguf"),
                    rope_original_context=16 if family == "llama" else None)
  pretrained = open_pretrained(path)
  assert pretrained.source.kind == "gguf"
  assert pretrained.model_config == open_pretrained(fixture_dir(family)).model_config.replace(
      max_seq_len=pretrained.model_config.max_seq_len)
  ref = reference(family)
  assert_logits_close(our_logits(pretrained.load_model(), ref), ref["logits"], ref["mask"])


# -- SmolLM2-135M-Instruct from the offline Q4_1 GGUF -----------------------------------

SMOL_NPZ = os.path.join(FIXTURES, "smollm2_135m_gguf.npz")


@pytest.fixture(scope="module")
def smollm2():
  return open_pretrained("smollm2-135m-instruct").load_model()


def _greedy(model, prompt: np.ndarray, steps: int) -> list[int]:
  """Greedy continuation by full forward passes over one fixed-length buffer (one shape: one compile per op);
  the not-yet-generated tail is padding (segment 0), which causal attention never lets earlier positions see."""
  length = len(prompt) + steps
  tokens = np.zeros((1, length), np.int32)
  tokens[0, :len(prompt)] = prompt
  positions = np.arange(length, dtype=np.int32)[None]
  for t in range(len(prompt), length):
    mask = (positions <= t - 1).astype(np.int32)
    logits = our_logits(model, {"tokens": tokens, "positions": positions, "mask": mask})
    tokens[0, t] = int(logits[0, t - 1].argmax())
  return tokens[0, len(prompt):].tolist()


def test_smollm2_gguf_matches_transformers_fixture(smollm2):
  ref = dict(np.load(SMOL_NPZ))
  logits = our_logits(smollm2, ref)
  real = ref["mask"].astype(bool)
  np.testing.assert_array_equal(logits.argmax(-1)[real], ref["top1"][real])
  # 30 layers of float32 sums give logits up to ~30 whose last bits depend on the CPU's vector width (AVX2 vs
  # AVX-512 summation order): 1e-5 relative is float32 round-off, far below any real difference.
  assert_logits_close(logits[..., :64], ref["logits_slice"], ref["mask"], atol=1e-4, rtol=1e-5)
  last = logits[np.arange(2), ref["last_index"]]
  np.testing.assert_array_equal(np.argsort(-last, axis=-1)[:, :16], ref["top_ids"])
  np.testing.assert_allclose(np.take_along_axis(last, ref["top_ids"], -1), ref["top_logits"], atol=1e-4, rtol=1e-5)


def test_smollm2_answers_a_simple_prompt_like_transformers(smollm2):
  ref = dict(np.load(SMOL_NPZ))
  prompt = ref["tokens"][0][ref["mask"][0] == 1]
  assert _greedy(smollm2, prompt, len(ref["greedy"])) == ref["greedy"].tolist()
  meta = json.load(open(os.path.join(FIXTURES, "smollm2_135m_gguf.json")))
  assert "Paris" in meta["greedy_text"]


# -- live comparisons (transformers installed) -------------------------------------------

def _transformers():
  pytest.importorskip("torch")
  return pytest.importorskip("transformers")


@pytest.mark.parametrize("family", FAMILIES)
def test_live_transformers_logits(family):
  _transformers()
  from tests.fixtures.make_weight_fixtures import hf_logits  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  hf = transformers.AutoModelForCausalLM.from_pretrained(fixture_dir(family), attn_implementation="eager").eval()
  ref = reference(family)
  theirs = hf_logits(hf, ref)
  assert_logits_close(theirs, ref["logits"], ref["mask"], atol=1e-5)  # the fixture is current
  assert_logits_close(our_logits(open_pretrained(fixture_dir(family)).load_model(), ref), theirs, ref["mask"])


@pytest.mark.parametrize("family", ["llama", "qwen2"])  # transformers reads no Gemma-1 GGUF
def test_live_transformers_reads_our_test_gguf_the_same_way(family, tmp_path):
  _transformers()
  import transformers  # pylint: disable=g-import-not-at-top
  from tests.fixtures.make_weight_fixtures import hf_logits  # pylint: disable=g-import-not-at-top
  write_gguf(fixture_dir(family if family != "llama" else "smollm2"), str(tmp_path / "m.gguf"))
  hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="m.gguf", dtype="float32").eval()
  ref = reference(family if family != "llama" else "smollm2")
  ours = our_logits(open_pretrained(str(tmp_path / "m.gguf")).load_model(), ref)
  assert_logits_close(ours, hf_logits(hf, ref), ref["mask"])


@pytest.mark.slow
def test_live_smollm2_gguf_against_transformers(smollm2):
  _transformers()
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from inoc_jax.model_sources import resolve  # pylint: disable=g-import-not-at-top
  from tests.fixtures.make_weight_fixtures import hf_logits  # pylint: disable=g-import-not-at-top
  path = resolve("smollm2-135m-instruct").path
  hf = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                         dtype=torch.float32).eval()
  ref = dict(np.load(SMOL_NPZ))
  theirs, ours = hf_logits(hf, ref), our_logits(smollm2, ref)
  real = ref["mask"].astype(bool)
  np.testing.assert_array_equal(ours.argmax(-1)[real], theirs.argmax(-1)[real])
  # Full vocabulary (3.5M logits up to ~34) over 30 fp32 layers: measured max |difference| 1.1e-4 on an AVX-512
  # CPU and 1.4e-4 on an AVX2 one, the same size as either implementation's distance from a float64 forward, so
  # 2e-4 plus 1e-5 of the logit's size.
  np.testing.assert_allclose(ours[real], theirs[real], atol=2e-4, rtol=1e-5)
