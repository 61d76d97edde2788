"""Shared helpers for the weight tests: fixture paths and running our model on a fixture batch."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from tests.conftest import REPO

FIXTURES = os.path.join(REPO, "tests", "fixtures", "weights")
FAMILIES = ("llama", "qwen2", "gemma", "smollm2")


def fixture_dir(family: str) -> str:
  return os.path.join(FIXTURES, family)


def reference(family: str) -> dict[str, np.ndarray]:
  return dict(np.load(os.path.join(fixture_dir(family), "reference.npz")))


def our_logits(model, batch: dict[str, np.ndarray]) -> np.ndarray:
  """Logits [batch, seq, vocab] for a fixture batch (mask = segment ids, padding = 0)."""
  logits, _ = model(jnp.asarray(batch["tokens"]), jnp.asarray(batch["positions"]), jnp.asarray(batch["mask"]))
  return np.asarray(logits, np.float32)


def assert_logits_close(ours: np.ndarray, theirs: np.ndarray, mask: np.ndarray, atol: float = 1e-4) -> None:
  """Compares real (mask == 1) positions only: padded positions are undefined in both."""
  real = mask.astype(bool)
  np.testing.assert_allclose(ours[real], theirs[real], atol=atol, rtol=0)
