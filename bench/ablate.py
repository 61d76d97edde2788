"""Before/after timings of single optimisations, alternated in one process so load changes hit both sides.

    python bench/ablate.py loss        # fused vs rematerialised cross-entropy, SmolLM2 head, 8 x 256
    python bench/ablate.py loss --chunk=64

Prints the best of --repeats alternating calls of each variant (best-of is the
figure least disturbed by other work on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # pylint: disable=g-import-not-at-top


def loss_variants(args):
  """{name: jitted grad fn} for the cross-entropy of a [batch, seq, d] hidden state against a tied head."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from inoc_jax.training.loss import chunked_cross_entropy, fused_cross_entropy  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  hidden = jnp.asarray(rng.normal(size=(args.batch, args.seq_len, args.d_model)), jnp.float32)
  table = jnp.asarray(rng.normal(size=(args.vocab, args.d_model)) * 0.02, jnp.float32)
  targets = jnp.asarray(rng.integers(0, args.vocab, (args.batch, args.seq_len)), jnp.int32)
  weights = jnp.ones((args.batch, args.seq_len), jnp.float32)
  head = lambda t, h: jnp.einsum("...d,vd->...v", h, t)
  chunk = args.chunk or None
  # value_and_grad, as in the train step (which reports the loss): the forward logits are needed.
  remat = jax.jit(jax.value_and_grad(lambda h, t: chunked_cross_entropy(h, lambda x: head(t, x), targets, weights,
                                                                        chunk).nll, argnums=(0, 1)))
  fused = jax.jit(jax.value_and_grad(lambda h, t: fused_cross_entropy(h, head, t, targets, weights, chunk).nll,
                                     argnums=(0, 1)))
  return {"rematerialised (before)": remat, "fused (after)": fused}, (hidden, table)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("what", choices=("loss",))
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--seq_len", type=int, default=256)
  parser.add_argument("--d_model", type=int, default=576)
  parser.add_argument("--vocab", type=int, default=49152)
  parser.add_argument("--chunk", type=int, default=0)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  common.use_cpu_flags("train")
  import jax  # pylint: disable=g-import-not-at-top
  variants, inputs = loss_variants(args)
  for fn in variants.values():
    jax.block_until_ready(fn(*inputs))
  best = {name: float("inf") for name in variants}
  for _ in range(args.repeats):
    for name, fn in variants.items():
      best[name] = min(best[name], common.best_seconds(lambda fn=fn: jax.block_until_ready(fn(*inputs)), 1))
  print(common.machine_line())
  print(common.markdown_table(["variant", "best seconds", "vs first"],
                              [[name, s, f"{list(best.values())[0] / s:.2f}x"] for name, s in best.items()]))


if __name__ == "__main__":
  main()
