"""Model presets, parameter counts and forward-pass invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from inoc_jax.errors import ConfigError
from inoc_jax.model import config as model_config
from inoc_jax.model.lora import LoraConfig, count_lora_params
from inoc_jax.model.transformer import Transformer, init_cache
from inoc_jax.training.train_state import param_count


@pytest.mark.parametrize("name", sorted(model_config.PUBLISHED_PARAM_COUNTS))
def test_preset_parameter_count_matches_published(name):
  cfg = model_config.get_preset(name)
  assert model_config.count_params(cfg) == model_config.PUBLISHED_PARAM_COUNTS[name]


@pytest.mark.parametrize("name", ["smollm2-135m", "gemma-2b", "qwen2-7b", "llama3-8b"])
def test_built_model_has_formula_parameter_count(name):
  cfg = model_config.get_preset(name)
  abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  assert param_count(nnx.state(abstract)) == model_config.count_params(cfg)


def test_unknown_preset_is_one_clear_error():
  with pytest.raises(ConfigError, match="Unknown model preset 'gpt-5'"):
    model_config.get_preset("gpt-5")


def test_invalid_head_grouping_is_rejected():
  with pytest.raises(ConfigError, match="multiple of num_kv_heads"):
    model_config.ModelConfig(num_heads=6, num_kv_heads=4)


def _inputs(batch=2, seq=12, vocab=512, seed=0):
  rng = np.random.default_rng(seed)
  tokens = jnp.asarray(rng.integers(0, vocab, (batch, seq)), jnp.int32)
  positions = jnp.tile(jnp.arange(seq, dtype=jnp.int32), (batch, 1))
  segments = jnp.ones((batch, seq), jnp.int32)
  return tokens, positions, segments


@pytest.mark.parametrize("preset", ["tiny", "tiny-llama", "tiny-qwen2", "tiny-gemma"])
def test_kv_cache_decoding_equals_full_forward(preset):
  cfg = model_config.get_preset(preset)
  model = Transformer(cfg, rngs=nnx.Rngs(0))
  tokens, positions, segments = _inputs()
  full, _ = model(tokens, positions, segments)
  cache = init_cache(cfg, 2, 16)
  first, cache = model(tokens[:, :7], positions[:, :7], segments[:, :7], cache=cache)
  steps = [first]
  for t in range(7, 12):
    logits, cache = model(tokens[:, t:t + 1], positions[:, t:t + 1], segments[:, t:t + 1], cache=cache)
    steps.append(logits)
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=2e-5)


def test_packed_segments_do_not_attend_across_examples():
  cfg = model_config.get_preset("tiny")
  model = Transformer(cfg, rngs=nnx.Rngs(0))
  tokens, _, _ = _inputs(batch=1, seq=10)
  # Row = example A (6 tokens) then example B (4 tokens), positions restart.
  positions = jnp.asarray([[0, 1, 2, 3, 4, 5, 0, 1, 2, 3]], jnp.int32)
  segments = jnp.asarray([[1, 1, 1, 1, 1, 1, 2, 2, 2, 2]], jnp.int32)
  packed, _ = model(tokens, positions, segments)
  alone_b, _ = model(tokens[:, 6:], positions[:, 6:], jnp.ones((1, 4), jnp.int32))
  np.testing.assert_allclose(packed[:, 6:], alone_b, atol=2e-5)
  # Changing example A's tokens leaves B's logits untouched.
  changed = tokens.at[:, :6].set((tokens[:, :6] + 7) % cfg.vocab_size)
  packed2, _ = model(changed, positions, segments)
  np.testing.assert_allclose(packed2[:, 6:], packed[:, 6:], atol=2e-5)
  assert not np.allclose(packed2[:, :6], packed[:, :6])


def test_lora_starts_identical_to_base_and_counts_match_formula():
  cfg = model_config.get_preset("tiny-qwen2")
  lora = LoraConfig(rank=4, alpha=8, targets=("q", "v", "gate"))
  base = Transformer(cfg, rngs=nnx.Rngs(0))
  adapted = Transformer(cfg, lora=lora, rngs=nnx.Rngs(0))
  _, adapters, rest = nnx.split(adapted, nnx.LoRAParam, ...)
  assert param_count(adapters) == count_lora_params(cfg, lora)
  nnx.update(adapted, nnx.state(base))  # same base weights
  tokens, positions, segments = _inputs()
  np.testing.assert_allclose(adapted(tokens, positions, segments)[0], base(tokens, positions, segments)[0],
                             atol=1e-6)


def test_rslora_and_standard_scaling():
  assert LoraConfig(rank=32, alpha=64, rslora=True).scale == pytest.approx(64 / 32 ** 0.5)
  assert LoraConfig(rank=8, alpha=16, rslora=False).scale == 2.0


def test_llama3_rope_scaling_changes_only_low_frequencies():
  cfg = model_config.get_preset("tiny-llama")
  scaled = model_config.rope_inverse_frequencies(cfg)
  plain = model_config.rope_inverse_frequencies(cfg.replace(rope_scaling=None))
  assert scaled[0] == plain[0]  # highest frequency untouched
  assert scaled[-1] == pytest.approx(plain[-1] / cfg.rope_scaling.factor)


def test_bf16_compute_keeps_fp32_params():
  cfg = model_config.get_preset("tiny")
  model = Transformer(cfg, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  tokens, positions, segments = _inputs()
  logits, _ = model(tokens, positions, segments)
  assert logits.dtype == jnp.bfloat16
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(model)))
