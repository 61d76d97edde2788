"""The KV-cache sampler: correctness against an uncached model, compilation per bucket, seeds, stops, mesh."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from inoc_jax.errors import ConfigError, DataError
from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from inoc_jax.sampling import Sampler, SamplingParams

CFG = get_preset("tiny")
PROMPTS = [[1, 5, 6, 7], [1, 8, 9], [1] + list(range(10, 30)), [1, 2, 3, 4, 5, 6], [1, 40, 41],
           [1] + list(range(100, 118))]  # widths 16 and 32 (min_bucket 16)


@pytest.fixture(scope="module")
def model():
  return Transformer(CFG, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def sampler(model):
  return Sampler.from_model(model, batch_size=4, progress=False, max_prompt_len=64)


def greedy_reference(model, prompt, steps, width=64):
  """Greedy continuation by full (uncached) forward passes over a right-padded row."""
  forward = jax.jit(lambda t, p, s: model(t, p, s)[0])
  tokens = list(prompt)
  for _ in range(steps):
    row = np.zeros((1, width), np.int32)
    row[0, :len(tokens)] = tokens
    segments = (np.arange(width) < len(tokens)).astype(np.int32)[None]
    logits = forward(jnp.asarray(row), jnp.arange(width)[None], jnp.asarray(segments))
    tokens.append(int(jnp.argmax(logits[0, len(tokens) - 1])))
  return tokens[len(prompt):]


def test_greedy_cached_decoding_equals_uncached_argmax(model, sampler):
  outputs = sampler.generate(PROMPTS, SamplingParams(max_new_tokens=8))
  for prompt, out in zip(PROMPTS, outputs):
    assert list(out[0].tokens) == greedy_reference(model, prompt, 8)
    assert out[0].finish_reason == "length"


def test_each_bucket_compiles_once(sampler):
  params = SamplingParams(max_new_tokens=6, temperature=0.9, top_k=20, seed=1)
  short = [[1] + [7 + i] * (1 + i % 9) for i in range(10)]        # 10 prompts of width-16 bucket
  long = [[1] + [9 + i] * (17 + i % 10) for i in range(10)]       # 10 prompts of width-32 bucket
  sampler.generate(short + long, params)  # batch 4: 3 batches per bucket, the last one partial
  # other prompts in the same buckets, other lengths and other traced knobs reuse the compiled loops
  sampler.generate(long[3:8] + short[:6], params.replace(temperature=0.3, seed=5))
  keys = [k for k in sampler.trace_counts["prefill"] if k[2] == 6]
  assert sorted((k[0], k[1]) for k in keys) == [(16, 4), (32, 4)]
  assert all(sampler.trace_counts["prefill"][k] == 1 for k in keys), sampler.trace_counts
  # both buckets' caches are sized to the widest bucket + budget, so they share one decode program
  decode_keys = [k for k in sampler.trace_counts["decode"] if k[2] == 6]
  assert decode_keys == [(4, 32 + 6, 6, keys[0][3])], sampler.trace_counts
  assert sampler.trace_counts["decode"][decode_keys[0]] == 1


def test_small_requests_use_a_smaller_batch():
  from inoc_jax.sampling.batching import batch_rows, plan_batches  # pylint: disable=g-import-not-at-top
  assert [batch_rows(n, 32) for n in (1, 2, 3, 5, 31, 33)] == [1, 2, 4, 8, 32, 32]
  assert batch_rows(1, 32, multiple=4) == 4
  plan = plan_batches([[1] * 3] * 5 + [[1] * 20], 1, 4, (16, 32))
  assert [(width, rows, len(requests)) for width, rows, requests in plan] == [(16, 4, 4), (16, 4, 1), (32, 1, 1)]


def test_fixed_seed_is_reproducible_and_independent_of_batching(model, sampler):
  params = SamplingParams(max_new_tokens=6, temperature=1.0, top_p=0.95, num_samples=3, seed=11)
  first = sampler.generate(PROMPTS, params)
  again = sampler.generate(PROMPTS, params)
  rebatched = Sampler.from_model(model, batch_size=2, progress=False, max_prompt_len=64).generate(PROMPTS, params)
  tokens = lambda outs: [[g.tokens for g in samples] for samples in outs]
  assert tokens(first) == tokens(again) == tokens(rebatched)
  assert len({g.tokens for g in first[0]}) > 1, "samples of one prompt must differ"
  other_seed = sampler.generate(PROMPTS, params.replace(seed=12))
  assert tokens(other_seed) != tokens(first)


def test_stop_token_ends_a_row_and_is_not_returned(sampler):
  greedy = sampler.generate(PROMPTS[:2], SamplingParams(max_new_tokens=8))
  stop_id = greedy[0][0].tokens[3]
  out = sampler.generate(PROMPTS[:2], SamplingParams(max_new_tokens=8, stop_token_ids=(stop_id,)))
  first = greedy[0][0].tokens
  assert out[0][0].tokens == first[:first.index(stop_id)]
  assert out[0][0].finish_reason == "stop_token"
  other = greedy[1][0].tokens
  expected = other[:other.index(stop_id)] if stop_id in other else other
  assert out[1][0].tokens == expected


def test_stop_strings_cut_text_and_stop_decoding(model):
  detokenize = lambda ids: "".join(chr(65 + i % 26) for i in ids)
  sampler = Sampler.from_model(model, batch_size=2, progress=False, max_prompt_len=64, decode_chunk=2)
  full = sampler.generate(PROMPTS[:2], SamplingParams(max_new_tokens=12), detokenize=detokenize)
  text = full[0][0].text
  stop_string = text[3:5]
  out = sampler.generate(PROMPTS[:2], SamplingParams(max_new_tokens=12, stop_strings=(stop_string,)),
                         detokenize=detokenize)
  assert out[0][0].text == text[:text.index(stop_string)]
  assert out[0][0].finish_reason == "stop_string"
  # decoding stopped within a chunk of the stop string instead of running to 12 tokens
  assert len(out[0][0].tokens) <= 5 + 2
  assert out[0][0].tokens == full[0][0].tokens[:len(out[0][0].tokens)]


def test_vocab_size_limits_the_ids_sampled(model):
  sampler = Sampler.from_model(model, batch_size=4, progress=False, max_prompt_len=64, vocab_size=40)
  outputs = sampler.generate(PROMPTS[:4], SamplingParams(max_new_tokens=6, temperature=2.0, num_samples=2, seed=4))
  tokens = [t for samples in outputs for g in samples for t in g.tokens]
  assert len(tokens) == 48 and max(tokens) < 40


def test_stop_strings_need_a_detokenizer(sampler):
  with pytest.raises(ConfigError, match="detokenize"):
    sampler.generate(PROMPTS[:1], SamplingParams(stop_strings=("x",)))


def test_prompt_longer_than_the_largest_bucket_is_a_clear_error(sampler):
  with pytest.raises(DataError, match="longer than the largest bucket"):
    sampler.generate([[1] * 65], SamplingParams(max_new_tokens=2))


MESH_WORKER = r"""
import json, jax, numpy as np
from flax import nnx
from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from inoc_jax.sampling import Sampler, SamplingParams
from inoc_jax.sharding.mesh import make_mesh
prompts = {prompts}
model = Transformer(get_preset("tiny"), rngs=nnx.Rngs(0))
out = {{}}
for name, sizes in (("single", dict(data=1, fsdp=1, tensor=1)), ("mesh", dict(data=2, fsdp=1, tensor=2)),
                    ("fsdp", dict(data=1, fsdp=2, tensor=2))):
  devices = jax.devices()[:1] if name == "single" else None
  mesh = make_mesh(sizes, devices=devices)
  sampler = Sampler.from_model(model, mesh=mesh, batch_size=4, progress=False, max_prompt_len=64)
  greedy = sampler.generate(prompts, SamplingParams(max_new_tokens=6))
  sampled = sampler.generate(prompts, SamplingParams(max_new_tokens=6, temperature=1.0, top_k=50, seed=3))
  k = sampler.model_states[0]["layers"][0]["attn"]["k_proj"]["kernel"]
  out[name] = dict(greedy=[list(o[0].tokens) for o in greedy], sampled=[list(o[0].tokens) for o in sampled],
                   k_spec=str(k.sharding.spec))
print(json.dumps(out))
"""


def test_sampler_on_data_fsdp_and_tensor_parallel_meshes_matches_one_device(python_subprocess):
  result = python_subprocess(MESH_WORKER.format(prompts=PROMPTS), devices=4)
  for name in ("mesh", "fsdp"):
    assert result[name]["greedy"] == result["single"]["greedy"]
    assert result[name]["sampled"] == result["single"]["sampled"]
    assert "tensor" in result[name]["k_spec"]
  assert "fsdp" in result["fsdp"]["k_spec"]
