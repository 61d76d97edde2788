"""Greedy parity with HF `generate`: token for token, for tiny random models of each family.

Golden outputs come from tests/fixtures/make_sampler_fixtures.py (committed, so
no torch is needed); when torch and transformers import, the same models are
also run live through `generate` and compared.

The fixture folders are ordinary HF checkpoints (config.json + safetensors),
loaded through `inoc_jax.weights.pretrained.open_pretrained`.
"""

import functools
import importlib.util
import json
import os

import pytest

from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from inoc_jax.sampling import Sampler, SamplingParams
from inoc_jax.weights.pretrained import open_pretrained
from tests.conftest import REPO

FIXTURES = os.path.join(REPO, "tests", "fixtures", "sampler")
with open(os.path.join(FIXTURES, "generations.json"), encoding="utf-8") as _f:
  GOLDEN = json.load(_f)
HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def load_tiny_hf(family: str) -> Transformer:
  """Our Transformer holding the fixture's HF weights, read by the HF importer (key map + config.json)."""
  pretrained = open_pretrained(os.path.join(FIXTURES, family))
  cfg = get_preset(GOLDEN[family]["preset"])
  ours = pretrained.model_config
  assert (ours.d_model, ours.num_layers, ours.num_heads, ours.num_kv_heads, ours.vocab_size, ours.tie_embeddings) == (
      cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.num_kv_heads, cfg.vocab_size, cfg.tie_embeddings)
  return pretrained.load_model()


def hf_expected(rows: list[list[int]], eos: int | None) -> list[list[int]]:
  """HF rows cut after the EOS (HF pads finished rows); our tokens exclude the stop token."""
  if eos is None:
    return rows
  return [row[:row.index(eos)] if eos in row else row for row in rows]


@functools.lru_cache(maxsize=None)
def sampler_for(family: str) -> Sampler:
  return Sampler.from_model(load_tiny_hf(family), batch_size=4, progress=False, max_prompt_len=32)


def our_greedy(family: str, eos: int | None) -> list[list[int]]:
  fixture = GOLDEN[family]
  sampler = sampler_for(family)
  params = SamplingParams(max_new_tokens=fixture["max_new_tokens"], stop_token_ids=() if eos is None else (eos,))
  outputs = sampler.generate(fixture["prompts"], params)
  return [list(o[0].tokens) for o in outputs]


@pytest.mark.parametrize("family", sorted(GOLDEN))
def test_greedy_matches_hf_generate_golden(family):
  fixture = GOLDEN[family]
  assert our_greedy(family, None) == fixture["greedy"]
  eos = fixture["eos_token_id"]
  assert our_greedy(family, eos) == hf_expected(fixture["greedy_with_eos"], eos)


@pytest.mark.skipif(not HAVE_TORCH, reason="live comparison needs torch + transformers (golden test still runs)")
@pytest.mark.parametrize("family", sorted(GOLDEN))
def test_greedy_matches_hf_generate_live(family):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  fixture = GOLDEN[family]
  model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(FIXTURES, family),
                                                            dtype=torch.float32).eval()
  prompts = fixture["prompts"]
  width = max(len(p) for p in prompts)
  ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
  mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
  with torch.no_grad():
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=fixture["max_new_tokens"],
                         eos_token_id=None, pad_token_id=0)
  theirs = out[:, width:].tolist()
  assert theirs == fixture["greedy"], "transformers changed its greedy output; regenerate the fixtures"
  assert our_greedy(family, None) == theirs


with open(os.path.join(FIXTURES, "smollm2_135m_instruct.json"), encoding="utf-8") as _f:
  SMOLLM2 = json.load(_f)


def smollm2_greedy(model) -> list[list[int]]:
  sampler = Sampler.from_model(model, batch_size=4, progress=False, max_prompt_len=64)
  eos = SMOLLM2["eos_token_id"]
  outputs = sampler.generate(SMOLLM2["prompts"], SamplingParams(max_new_tokens=SMOLLM2["max_new_tokens"],
                                                                stop_token_ids=(eos,)))
  return [list(o[0].tokens) + ([eos] if o[0].finish_reason == "stop_token" else []) for o in outputs]


@pytest.mark.slow
def test_smollm2_greedy_matches_hf_golden_through_our_gguf_import():
  model = open_pretrained("smollm2-135m-instruct").load_model()
  assert smollm2_greedy(model) == SMOLLM2["greedy"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TORCH, reason="live comparison needs torch + transformers (golden test still runs)")
def test_smollm2_greedy_matches_hf_golden_with_weights_loaded_by_transformers():
  from bench.hf_reference import load_hf_model, transformer_from_hf  # pylint: disable=g-import-not-at-top
  hf_model = load_hf_model("smollm2-135m-instruct")
  assert smollm2_greedy(transformer_from_hf(hf_model, get_preset("smollm2-135m"))) == SMOLLM2["greedy"]
