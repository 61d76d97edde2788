"""Decoding throughput: our KV-cache sampler beside HF `generate`, same model, same batch, one invocation.

    python bench/decode.py                       # SmolLM2-135M-Instruct (offline GGUF), batch 1, 8, 32
    python bench/decode.py --batches=8 --new_tokens=64 --skip_hf

Both sides decode greedily, `prompt_len` prompt tokens (random ids, the same
for both) then exactly `new_tokens` new tokens (no stop token), and the time
includes the prefill. Our first call per batch compiles; the reported time is
the best of --repeats compiled calls (compile time = first - best); HF gets
a warm-up and the best of --repeats calls. The bandwidth limit is the weight
bytes a decode step must read, over the bandwidth of a large matrix-vector
product measured here first: steps/s <= bandwidth / weight bytes, tokens/s <= that x
batch. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.hf_reference import load_hf_model, transformer_from_hf  # pylint: disable=g-import-not-at-top
from inoc_jax.model.config import get_preset  # pylint: disable=g-import-not-at-top
from inoc_jax.sampling import Sampler, SamplingParams  # pylint: disable=g-import-not-at-top


def measure_bandwidth(gigabytes: float = 0.5, repeats: int = 10) -> float:
  """Weight-streaming bandwidth (bytes/s): a jitted float32 matrix-vector product, the shape of a decode step."""
  cols = 16384
  matrix = jnp.ones((int(gigabytes * 2**30) // 4 // cols, cols), jnp.float32)
  vector = jnp.ones((cols,), jnp.float32)
  matvec = jax.jit(jnp.matmul)
  matvec(matrix, vector).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matvec(matrix, vector).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return matrix.nbytes / best


def peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def ours(model, prompts: np.ndarray, new_tokens: int, repeats: int) -> tuple[float, float, np.ndarray]:
  """(best seconds of compiled calls, compile seconds, tokens [B, new_tokens])."""
  batch, prompt_len = prompts.shape
  sampler = Sampler.from_model(model, batch_size=batch, min_bucket=prompt_len, max_prompt_len=prompt_len,
                               progress=False)
  params = SamplingParams(max_new_tokens=new_tokens)
  rows = [list(p) for p in prompts]
  start = time.perf_counter()
  sampler.generate(rows, params)
  first = time.perf_counter() - start
  seconds = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    outputs = sampler.generate(rows, params)
    seconds = min(seconds, time.perf_counter() - start)
  return seconds, max(first - seconds, 0.0), np.asarray([o[0].tokens for o in outputs])


def hf(model, prompts: np.ndarray, new_tokens: int, repeats: int) -> tuple[float, np.ndarray]:
  """(best seconds of `repeats` generate calls after a warm-up, tokens [B, new_tokens])."""
  import torch  # pylint: disable=g-import-not-at-top
  ids = torch.as_tensor(prompts, dtype=torch.long)
  mask = torch.ones_like(ids)
  model.generation_config.eos_token_id = None
  kwargs = dict(attention_mask=mask, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                eos_token_id=None, pad_token_id=0)
  with torch.inference_mode():
    model.generate(ids[:, :8], **{**kwargs, "attention_mask": mask[:, :8], "max_new_tokens": 4,
                                  "min_new_tokens": 4})  # warm-up
    seconds = float("inf")
    for _ in range(repeats):
      start = time.perf_counter()
      out = model.generate(ids, **kwargs)
      seconds = min(seconds, time.perf_counter() - start)
  return seconds, out[:, prompts.shape[1]:].numpy()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="smollm2-135m-instruct", help="known name, GGUF file or HF folder")
  parser.add_argument("--preset", default="smollm2-135m", help="our architecture preset matching --model")
  parser.add_argument("--batches", default="1,8,32")
  parser.add_argument("--prompt_len", type=int, default=64)
  parser.add_argument("--new_tokens", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=2, help="timed calls per side; the best is reported")
  parser.add_argument("--skip_hf", action="store_true")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  batches = [int(b) for b in args.batches.split(",")]

  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count() or 1)
  cfg = get_preset(args.preset)
  hf_model = load_hf_model(args.model)
  model = transformer_from_hf(hf_model, cfg)
  weight_bytes = sum(x.nbytes for x in jax.tree.leaves(nnx.state(model)))
  bandwidth = measure_bandwidth()
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, {os.cpu_count()} CPU threads; "
        f"jax {jax.__version__}, torch {torch.__version__}")
  print(f"model: {args.model} ({weight_bytes / 2**20:.0f} MiB fp32 weights); memory bandwidth "
        f"{bandwidth / 1e9:.1f} GB/s -> at most {bandwidth / weight_bytes:.1f} decode steps/s\n")
  rng = np.random.default_rng(args.seed)
  rows = []
  for batch in batches:
    prompts = rng.integers(3, cfg.vocab_size, (batch, args.prompt_len)).astype(np.int32)
    ours_s, compile_s, ours_tokens = ours(model, prompts, args.new_tokens, args.repeats)
    ours_rss = peak_rss_gib()
    generated = batch * args.new_tokens
    limit = bandwidth / weight_bytes * batch
    row = dict(batch=batch, ours=generated / ours_s, compile=compile_s, limit_fraction=generated / ours_s / limit,
               ours_rss=ours_rss)
    if not args.skip_hf:
      hf_s, hf_tokens = hf(hf_model, prompts, args.new_tokens, args.repeats)
      row.update(hf=generated / hf_s, ratio=hf_s / ours_s,
                 same=float(np.mean([np.array_equal(a, b) for a, b in zip(ours_tokens, hf_tokens)])))
    rows.append(row)
    print(f"batch {batch}: ours {row['ours']:.1f} tok/s" + (f", HF {row['hf']:.1f} tok/s" if "hf" in row else ""),
          flush=True)
  print()
  print("| model | batch | prompt | new | dtype | ours tok/s | HF generate tok/s | ours / HF | "
        "of bandwidth limit | compile s | same greedy rows |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    hf_cells = (f"{r['hf']:.1f} | {r['ratio']:.2f}x" if "hf" in r else "- | -")
    same = f"{r['same']:.2f}" if "same" in r else "-"
    print(f"| {args.model} | {r['batch']} | {args.prompt_len} | {args.new_tokens} | float32 | {r['ours']:.1f} | "
          f"{hf_cells} | {r['limit_fraction']:.0%} | {r['compile']:.1f} | {same} |")
  print(f"\npeak host memory (whole process, ours then HF): {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
  main()
