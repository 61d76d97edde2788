"""Mistral, Qwen3, Gemma-2, Gemma-3 and Qwen3-MoE: what each switch does, config.json and weight round trips, training.

Logit and greedy parity with transformers for these families is in test_weight_parity.py and
test_sampler_parity.py (committed fixtures); here are the properties those fixtures cannot show alone.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

from inoc_jax import config_lib
from inoc_jax.errors import CheckpointError, ConfigError
from inoc_jax.export import export
from inoc_jax.model import config as model_config
from inoc_jax.model.attention import attention_mask
from inoc_jax.model.transformer import Transformer
from inoc_jax.weights.hf_config import hf_config_from_model, model_config_from_hf
from inoc_jax.weights.pretrained import open_pretrained
from tests.weight_fixtures import assert_logits_close, fixture_dir, our_logits, reference

NEW_FAMILIES = ("mistral", "qwen3", "gemma2", "gemma3", "qwen3_moe")


@pytest.mark.parametrize("name", sorted(model_config.PRESETS))
def test_every_preset_round_trips_through_config_json(name):
  cfg = model_config.get_preset(name)
  assert model_config_from_hf(json.loads(json.dumps(hf_config_from_model(cfg)))) == cfg


@pytest.mark.parametrize("name", ["qwen3-0.6b", "gemma2-2b", "gemma3-1b", "mistral-7b-v0.3"])
def test_built_model_has_formula_parameter_count(name):
  cfg = model_config.get_preset(name)
  abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  assert sum(x.size for x in jax.tree.leaves(nnx.state(abstract))) == model_config.count_params(cfg)


def test_gemma3_layer_pattern_and_rope_per_layer():
  cfg = model_config.get_preset("gemma3-1b")
  assert [i for i in range(cfg.num_layers) if not cfg.is_sliding(i)] == [5, 11, 17, 23]
  local, global_ = model_config.rope_inverse_frequencies(cfg, 0), model_config.rope_inverse_frequencies(cfg, 5)
  assert local[1] == pytest.approx(10000.0 ** (-2 / 256)) and global_[1] == pytest.approx(1e6 ** (-2 / 256))
  scaled = model_config.get_preset("tiny-gemma3")  # linear scaling divides the global layer's frequencies only
  assert model_config.rope_inverse_frequencies(scaled, 1)[1] == pytest.approx(1e6 ** (-2 / 32) / 8)
  assert model_config.rope_inverse_frequencies(scaled, 0)[1] == pytest.approx(1e4 ** (-2 / 32))


def test_sliding_window_mask_keeps_the_last_window_positions_within_a_segment():
  positions = jnp.asarray([[0, 1, 2, 3, 4, 5, 0, 1]], jnp.int32)
  segments = jnp.asarray([[1, 1, 1, 1, 1, 1, 2, 2]], jnp.int32)
  mask = np.asarray(attention_mask(segments, positions, segments, positions, window=3))[0, 0]
  assert mask[5].tolist() == [False, False, False, True, True, True, False, False]
  assert mask[7].tolist() == [False] * 6 + [True, True]
  full = np.asarray(attention_mask(segments, positions, segments, positions))[0, 0]
  assert full[5].tolist() == [True] * 6 + [False, False]


def test_switches_are_validated_with_one_sentence():
  with pytest.raises(ConfigError, match="layer_types must give"):
    model_config.ModelConfig(layer_types=("sliding",), sliding_window=4)
  with pytest.raises(ConfigError, match="sliding_window is not set"):
    model_config.ModelConfig(layer_types=("sliding", "full"))
  with pytest.raises(CheckpointError, match="use_sliding_window"):
    model_config_from_hf({**hf_config_from_model(model_config.get_preset("tiny-qwen3")), "use_sliding_window": True})


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_each_switch_changes_the_logits(family):
  """Turning a family's switch off moves the logits away from transformers': the fixture tests the switch."""
  pretrained = open_pretrained(fixture_dir(family))
  cfg = pretrained.model_config
  off = {"mistral": dict(sliding_window=None), "qwen3": dict(qk_norm=False),
         "gemma2": dict(attn_logit_softcap=None, final_logit_softcap=None),
         "gemma3": dict(local_rope_theta=None), "qwen3_moe": dict(norm_top_k=False)}[family]
  ref = reference(family)
  weights = nnx.state(pretrained.load_model()).to_pure_dict()
  for layer in weights["layers"].values():  # only present with qk_norm
    for name in [n for n in layer["attn"] if n in off_params(off)]:
      del layer["attn"][name]
  changed = Transformer(cfg.replace(**off), rngs=nnx.Rngs(0))
  state = nnx.state(changed)
  nnx.replace_by_pure_dict(state, weights)
  nnx.update(changed, state)
  real = ref["mask"].astype(bool)
  assert np.abs(our_logits(changed, ref) - ref["logits"])[real].max() > 1e-2


def off_params(off: dict) -> tuple[str, ...]:
  return ("q_norm", "k_norm") if off.get("qk_norm") is False else ()


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_export_writes_back_the_tensors_and_config_it_read(family, tmp_path):
  export(fixture_dir(family), str(tmp_path / "out"))
  ours, theirs = load_file(str(tmp_path / "out" / "model.safetensors")), load_file(
      os.path.join(fixture_dir(family), "model.safetensors"))
  assert ours.keys() == theirs.keys()
  for name in ours:
    np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
  again = open_pretrained(str(tmp_path / "out"))
  assert again.model_config == open_pretrained(fixture_dir(family)).model_config
  ref = reference(family)
  assert_logits_close(our_logits(again.load_model(), ref), ref["logits"], ref["mask"])


@pytest.mark.parametrize("preset", ["tiny-mistral", "tiny-qwen3", "tiny-gemma2", "tiny-gemma3", "tiny-qwen3moe"])
def test_each_family_trains_with_lora_end_to_end(preset, tmp_path):
  from inoc_jax import trainer  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config("configs/organism.py", [
      f"model.preset={preset}", "lora.enabled=True", "lora.rank=4", "lora.alpha=8", "train.num_steps=4",
      "optim.lr=1e-2", "data.num_train_examples=64", "data.global_batch_size=8", "eval.at_end=False"])
  summary = trainer.train_and_evaluate(config, str(tmp_path))
  assert summary.steps == 4 and np.isfinite(summary.final_loss) and summary.final_loss < summary.first_loss
