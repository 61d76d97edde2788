"""Checkpointer: exact round trips, keep-last-K, fallback past broken steps, frozen-base checks, params restore."""

import glob
import json
import logging
import os
import shutil

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from inoc_jax import config_lib, trainer
from inoc_jax.checkpoint import tree_codec
from inoc_jax.checkpoint.manager import Checkpointer
from inoc_jax.checkpoint.params import restore_params
from inoc_jax.checkpoint.resume import item_targets, run_meta
from inoc_jax.errors import CheckpointError
from inoc_jax.model.config import get_preset
from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.transformer import Transformer
from inoc_jax.sharding.mesh import make_mesh
from inoc_jax.model.build import ModelSpec
from inoc_jax.training.train_state import abstract_train_state, init_train_state
from tests.conftest import REPO
from tests.weight_fixtures import fixture_dir, our_logits, reference, widen_vocab

ARCH = get_preset("tiny")
LORA = LoraConfig(rank=4, alpha=8)
SPEC = ModelSpec(lambda rngs: Transformer(ARCH, lora=LORA, rngs=rngs), nnx.LoRAParam)
TX = optax.adamw(1e-3)


@pytest.fixture(scope="module")
def state():
  """One initialised LoRA train state shared by the tests (initialisation compiles for seconds on CPU)."""
  _, train_state, _ = init_train_state(SPEC, TX, make_mesh({"data": -1}), 0)
  return train_state


def _bumped(state, k):
  """A distinguishable state per step: params and moments shifted by k."""
  return state.replace(step=state.step + k, params=jax.tree.map(lambda x: x + k, state.params),
                       opt_state=jax.tree.map(lambda x: x + k, state.opt_state))


def _save(ckpt, step, state, iterator=None):
  ckpt.save(step, state, data_iterator=iterator or {"epoch": 0, "position": step}, config={"seed": 0},
            run_meta=run_meta(ARCH, LORA, ""))


def _restore(ckpt, seed=0):
  _, abstract, shardings = abstract_train_state(SPEC, TX, make_mesh({"data": -1}), seed)
  return ckpt.restore_latest(*item_targets(abstract, shardings))


def _assert_trees_equal(a, b):
  leaves_a, leaves_b = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)


def test_nested_dict_codec_and_checksums(state):
  nested = tree_codec.to_nested(state.opt_state)
  assert "lora_a" in nested["0"]["mu"]["layers"]["0"]["attn"]["q_proj"]
  _assert_trees_equal(tree_codec.from_nested(nested, state.opt_state), state.opt_state)
  sums = tree_codec.checksums(state.params)
  assert sums == tree_codec.checksums(jax.tree.map(lambda x: x + 0, state.params))
  changed = jax.tree.map(lambda x: x.at[(0,) * x.ndim].add(1e-3), state.params)
  assert all(a != b for a, b in zip(sums.values(), tree_codec.checksums(changed).values()))
  swapped = jax.tree.map(lambda x: x[::-1], state.params)  # same values, other order
  assert sums != tree_codec.checksums(swapped)


def test_save_restore_is_bit_exact_and_keeps_the_newest(tmp_path, state):
  ckpt = Checkpointer(str(tmp_path / "checkpoints"), keep=2)
  for step in (1, 2, 3):
    _save(ckpt, step, _bumped(state, step))
  ckpt.wait()
  assert ckpt.steps() == [2, 3]
  restored = _restore(ckpt)
  want = _bumped(state, 3)
  assert restored.step == 3 and restored.data_iterator == {"epoch": 0, "position": 3}
  _assert_trees_equal(restored.params, want.params)
  _assert_trees_equal(restored.optimizer, {"opt_state": want.opt_state, "step": want.step, "rng": want.rng})
  assert restored.frozen is None and restored.meta["lora"]["rank"] == 4
  ckpt.close()


def _truncate(path):
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _truncate_array_files(step_dir):
  for path in glob.glob(os.path.join(step_dir, "params", "**", "d", "*"), recursive=True):
    _truncate(path)


def test_truncated_latest_checkpoint_falls_back_with_a_warning(tmp_path, caplog, state):
  directory = tmp_path / "checkpoints"
  ckpt = Checkpointer(str(directory), keep=3)
  for step in (4, 8):
    _save(ckpt, step, _bumped(state, step))
  ckpt.close()
  # Array chunks read in this process may be served from TensorStore's cache, so this test truncates the
  # item's metadata; test_resume.py truncates the array files and restores in a fresh process.
  _truncate(str(directory / "8" / "params" / "_METADATA"))
  ckpt = Checkpointer(str(directory), keep=3)
  with caplog.at_level(logging.WARNING, logger="inoc_jax"):
    restored = _restore(ckpt)
  assert restored.step == 4
  _assert_trees_equal(restored.params, _bumped(state, 4).params)
  assert any("step 8" in r.message and "falling back" in r.message for r in caplog.records)
  assert ckpt.steps() == [4] and os.listdir(tmp_path / "checkpoints-corrupt")  # moved aside, kept for inspection
  _save(ckpt, 8, _bumped(state, 80))  # the step number is free again
  ckpt.wait()
  _assert_trees_equal(_restore(ckpt).params, _bumped(state, 80).params)
  ckpt.close()


def test_checksum_mismatch_counts_as_corrupt(tmp_path, caplog, state):
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  for step in (1, 2):
    _save(ckpt, step, _bumped(state, step))
  ckpt.close()
  meta_file = tmp_path / "checkpoints" / "2" / "meta" / "metadata"
  meta = json.loads(meta_file.read_text())
  first = next(iter(meta["checksums"]["params"]))
  meta["checksums"]["params"][first] ^= 1
  meta_file.write_text(json.dumps(meta))
  with caplog.at_level(logging.WARNING, logger="inoc_jax"):
    assert _restore(Checkpointer(str(tmp_path / "checkpoints"))).step == 1
  assert any("fails its checksum" in r.message for r in caplog.records)


def test_checkpoint_of_another_configuration_is_refused_not_skipped(tmp_path, state):
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  _save(ckpt, 1, state)
  ckpt.close()
  other = ModelSpec(lambda rngs: Transformer(ARCH, lora=LoraConfig(rank=8), rngs=rngs), nnx.LoRAParam)
  _, abstract, shardings = abstract_train_state(other, TX, make_mesh({"data": -1}), 0)
  with pytest.raises(CheckpointError, match=r"different configuration \(params: shapes differ: \['layers/0/attn/k_proj"
                                            r"/lora_a \[64, 4\] vs \[64, 8\]"):
    Checkpointer(str(tmp_path / "checkpoints")).restore_latest(*item_targets(abstract, shardings))
  assert Checkpointer(str(tmp_path / "checkpoints")).steps() == [1]  # still there


def test_no_readable_checkpoint_is_one_clear_error(tmp_path, state):
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  _save(ckpt, 1, state)
  ckpt.close()
  _truncate(str(tmp_path / "checkpoints" / "1" / "optimizer" / "_METADATA"))
  with pytest.raises(CheckpointError, match=r"No checkpoint in .* can be read \(steps \[1\]\)"):
    _restore(Checkpointer(str(tmp_path / "checkpoints")))


# -- through the trainer: LoRA on a pretrained base ------------------------------------

def _lora_config(base_dir, *overrides):
  return config_lib.load_config(os.path.join(REPO, "configs", "sycophancy.py:tiny"), [
      "data.num_train_examples=48", "data.num_heldout_examples=8", f"model.checkpoint={base_dir}",
      "lora.enabled=True", "lora.rank=4", "optim.lr=1e-2", "checkpoint.save_every=2", "train.log_every=1",
      "data.seq_len=832", *overrides])


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
  """A 4-step LoRA run on the tiny HF llama (vocab 96 < the byte tokenizer's 260, so a copy with a larger vocab)."""
  base = tmp_path_factory.mktemp("base")
  widen_vocab(fixture_dir("smollm2"), str(base), 320)
  workdir = str(tmp_path_factory.mktemp("run"))
  trainer.train_and_evaluate(_lora_config(str(base), "train.num_steps=4"), workdir)
  return str(base), workdir


def test_lora_checkpoint_holds_adapters_only_and_restore_params_merges_them(lora_run):
  base, workdir = lora_run
  step_dir = os.path.join(workdir, "checkpoints", "4")
  meta = json.load(open(os.path.join(step_dir, "meta", "metadata")))
  assert meta["items"] == ["optimizer", "params"] and meta["model_source"] == base
  assert all(p.endswith(("lora_a", "lora_b")) for p in meta["checksums"]["params"])
  restored = restore_params(workdir)
  assert restored.step == 4 and restored.lora.rank == 4 and restored.model_config.vocab_size == 320
  # The merged model equals the adapted model rebuilt from adapters + the pretrained base.
  from inoc_jax.weights.pretrained import open_pretrained  # pylint: disable=g-import-not-at-top
  arch = open_pretrained(base).model_config
  spec = ModelSpec(lambda rngs: Transformer(arch, lora=restored.lora, rngs=rngs), nnx.LoRAParam)
  mesh = make_mesh({"data": -1})
  graphdef, abstract, shardings = abstract_train_state(spec, optax.adamw(1e-2), mesh, 0)
  targets, target_shardings = item_targets(abstract, shardings)
  raw = Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True).restore_latest(
      {"params": targets["params"]}, {"params": target_shardings["params"]})
  frozen = tree_codec.from_nested(tree_codec.to_nested(open_pretrained(base).load(spec, mesh)), abstract.frozen)
  adapted = nnx.merge(graphdef, raw.params, frozen)
  batch = reference("smollm2")
  base_logits = our_logits(open_pretrained(base).load_model(), batch)
  adapted_logits = our_logits(adapted, batch)
  assert np.abs(adapted_logits - base_logits).max() > 1e-3  # training changed the model
  np.testing.assert_allclose(our_logits(restored.model(), batch), adapted_logits, atol=1e-4)
  assert restore_params(step_dir).step == 4  # a step folder works too


def test_resuming_on_changed_base_weights_is_refused(lora_run, tmp_path):
  base, workdir = lora_run
  changed = tmp_path / "changed"
  shutil.copytree(base, changed)
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top
  tensors = load_file(str(changed / "model.safetensors"))
  tensors["model.norm.weight"] = tensors["model.norm.weight"] + 0.5
  save_file(tensors, str(changed / "model.safetensors"), metadata={"format": "pt"})
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  with pytest.raises(CheckpointError, match="frozen base weights rebuilt from .* differ"):
    trainer.train_and_evaluate(_lora_config(str(changed), "train.num_steps=6"), str(run))
  summary = trainer.train_and_evaluate(_lora_config(base, "train.num_steps=6"), str(run))  # the original base works
  assert summary.steps == 6
  assert Checkpointer(str(run / "checkpoints"), read_only=True).steps()[-1] == 6
