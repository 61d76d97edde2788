"""Shared helpers for the weight tests: fixture paths and running our model on a fixture batch."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file, save_file

from tests.conftest import REPO

FIXTURES = os.path.join(REPO, "tests", "fixtures", "weights")
FAMILIES = ("llama", "qwen2", "gemma", "smollm2", "mistral", "qwen3", "gemma2", "gemma3", "qwen3_moe")
GGUF_FAMILIES = ("llama", "qwen2", "gemma", "smollm2")  # the families our GGUF reader (and tests/gguf_writer) know


def fixture_dir(family: str) -> str:
  return os.path.join(FIXTURES, family)


def reference(family: str) -> dict[str, np.ndarray]:
  return dict(np.load(os.path.join(fixture_dir(family), "reference.npz")))


def our_logits(model, batch: dict[str, np.ndarray]) -> np.ndarray:
  """Logits [batch, seq, vocab] for a fixture batch (mask = segment ids, padding = 0)."""
  logits, _ = model(jnp.asarray(batch["tokens"]), jnp.asarray(batch["positions"]), jnp.asarray(batch["mask"]))
  return np.asarray(logits, np.float32)


def assert_logits_close(ours: np.ndarray, theirs: np.ndarray, mask: np.ndarray, atol: float = 1e-4,
                        rtol: float = 0.0) -> None:
  """Compares real (mask == 1) positions only: padded positions are undefined in both."""
  real = mask.astype(bool)
  np.testing.assert_allclose(ours[real], theirs[real], atol=atol, rtol=rtol)


def widen_vocab(src, dst, vocab):
  """The tiny fixture with its embedding padded to `vocab` rows (random), so byte-tokenised data fits."""
  tensors = load_file(os.path.join(src, "model.safetensors"))
  rng = np.random.default_rng(0)
  for name in ("model.embed_tokens.weight", "lm_head.weight"):
    if name in tensors:
      rows = tensors[name]
      extra = rng.normal(size=(vocab - rows.shape[0], rows.shape[1])).astype(np.float32) * rows.std()
      tensors[name] = np.concatenate([rows, extra])
  os.makedirs(dst, exist_ok=True)
  save_file(tensors, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
  cfg = json.load(open(os.path.join(src, "config.json")))
  cfg["vocab_size"] = vocab
  json.dump(cfg, open(os.path.join(dst, "config.json"), "w"))
