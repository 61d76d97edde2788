"""LoRA's frozen base in its own storage dtype (`model.base_dtype`): bf16 halves the base's memory, the adapters and
their optimizer state stay float32, and a bf16-base run restores, resumes and evaluates like a float32 one."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inoc_jax import config_lib, trainer
from inoc_jax.aot.memory import tree_bytes
from inoc_jax.checkpoint.params import restore_params
from inoc_jax.errors import ConfigError
from inoc_jax.model import build
from inoc_jax.model.config import get_preset
from inoc_jax.training.optimizer import make_optimizer
from inoc_jax.training.train_state import abstract_train_state
from inoc_jax.sharding.mesh import make_mesh
from tests.conftest import REPO


def _config(*overrides):
  return config_lib.load_config(os.path.join(REPO, "configs", "organism.py"), [
      "lora.enabled=True", "lora.rank=4", "lora.alpha=8", "train.num_steps=4", "optim.lr=1e-2",
      "data.num_train_examples=64", "data.global_batch_size=8", "eval.at_end=False", *overrides])


def _dtypes(tree) -> set[str]:
  return {np.dtype(leaf.dtype).name for leaf in jax.tree.leaves(tree)}


def _abstract_state(config):
  arch = get_preset(config.model.preset)
  tx, _ = make_optimizer(config.optim, 10)
  return abstract_train_state(build.training_spec(config, arch), tx, make_mesh({"data": 1}))[1]


@pytest.mark.parametrize("compute, base, frozen", [
    ("float32", "auto", "float32"), ("bfloat16", "auto", "bfloat16"), ("float32", "bfloat16", "bfloat16"),
    ("bfloat16", "float32", "float32")])
def test_frozen_base_takes_base_dtype_and_adapters_stay_float32(compute, base, frozen):
  state = _abstract_state(_config(f"model.dtype={compute}", f"model.base_dtype={base}"))
  assert _dtypes(state.frozen) == {frozen}
  assert _dtypes(state.params) == {"float32"} and _dtypes(state.opt_state) <= {"float32", "int32"}


def test_bf16_base_halves_the_frozen_bytes_and_full_fine_tuning_stays_float32():
  fp32 = _abstract_state(_config("model.base_dtype=float32"))
  bf16 = _abstract_state(_config("model.base_dtype=bfloat16"))
  assert tree_bytes(bf16.frozen) * 2 == tree_bytes(fp32.frozen)
  assert tree_bytes(bf16.params) == tree_bytes(fp32.params)
  full = _abstract_state(_config("lora.enabled=False", "model.dtype=bfloat16"))
  assert _dtypes(full.params) == {"float32"} and not jax.tree.leaves(full.frozen)


def test_bad_base_dtype_and_a_base_dtype_without_lora_are_one_sentence_errors():
  with pytest.raises(ConfigError, match="model.base_dtype must be auto or one of"):
    config_lib.validate(_config("model.base_dtype=int3"), 1)
  with pytest.raises(ConfigError, match="lora.enabled=False"):
    config_lib.validate(_config("lora.enabled=False", "model.base_dtype=bfloat16"), 1)


def test_bf16_base_trains_close_to_float32_restores_and_resumes(tmp_path):
  runs = {}
  for base in ("float32", "bfloat16"):
    runs[base] = trainer.train_and_evaluate(_config(f"model.base_dtype={base}"), str(tmp_path / base))
  fp32, bf16 = runs["float32"], runs["bfloat16"]
  assert bf16.final_loss < bf16.first_loss
  # The same data and adapters; only the base is rounded to bf16 (8 significant bits).
  assert bf16.first_loss == pytest.approx(fp32.first_loss, rel=2e-2)
  assert bf16.final_loss == pytest.approx(fp32.final_loss, rel=5e-2)
  meta = json.load(open(tmp_path / "bfloat16" / "checkpoints" / "4" / "meta" / "metadata"))
  assert meta["base_dtype"] == "bfloat16"

  restored = restore_params(str(tmp_path / "bfloat16"))  # the base rebuilt from the seed, in bf16, checksummed
  kernel = restored.params["layers"][0]["attn"]["q_proj"]["kernel"]
  assert kernel.dtype == jnp.bfloat16 and restored.adapters is not None
  assert _dtypes(restored.adapters) == {"float32"}

  resumed = trainer.train_and_evaluate(_config("model.base_dtype=bfloat16", "train.num_steps=6"),
                                       str(tmp_path / "bfloat16"))
  assert resumed.steps == 6 and np.isfinite(resumed.final_loss)

