"""Decoding throughput: our KV-cache sampler beside HF `generate`, same model, same batch, one invocation.

    python bench/decode.py                       # SmolLM2-135M-Instruct (offline GGUF), batch 1, 8, 32
    python bench/decode.py --batches=8 --new_tokens=64 --skip_hf
    python bench/decode.py --model= --preset=tiny --skip_hf   # random init, no torch needed

Both sides decode greedily, `prompt_len` prompt tokens (random ids, the same
for both) then exactly `new_tokens` new tokens (no stop token), and the time
includes the prefill. Each side runs in its own process (its peak host memory
is its own): ours loads the checkpoint with the project's importer, HF with
transformers. Our first call per batch compiles; the reported time is the best
of --repeats compiled calls (compile time = first - best); HF gets a warm-up
and the best of --repeats calls. The two sides run --processes times each,
alternating ours / HF in fresh processes, and each row reports the median
process. The run refuses to start when the 1-minute load average exceeds 1.0
(--allow_noisy marks the rows "noisy") and prints the load before and after. The bandwidth limit is the weight bytes a
decode step must read, over the bandwidth of a large matrix-vector product
measured here first: steps/s <= bandwidth / weight bytes, tokens/s <= that x
batch. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # pylint: disable=g-import-not-at-top


def prompts_for(vocab_size: int, batch: int, prompt_len: int, seed: int):
  import numpy as np  # pylint: disable=g-import-not-at-top
  return np.random.default_rng([seed, batch]).integers(3, vocab_size, (batch, prompt_len)).astype(np.int32)


def load_ours(args):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from inoc_jax.model import build  # pylint: disable=g-import-not-at-top
  from inoc_jax.model.config import get_preset  # pylint: disable=g-import-not-at-top
  from inoc_jax.weights.pretrained import open_pretrained  # pylint: disable=g-import-not-at-top
  dtype = jnp.dtype(args.dtype)
  if args.model:
    return open_pretrained(args.model).load_model(dtype=dtype)
  return build.random_model(get_preset(args.preset), dtype, args.seed)


def run_ours(args) -> dict:
  common.use_cpu_flags("decode")
  from inoc_jax.runtime.host_memory import keep_freed_host_memory  # pylint: disable=g-import-not-at-top
  keep_freed_host_memory()  # with INOC_JAX_HOST_MALLOC=keep, as the inoc_jax commands (inoc_jax.cli.friendly)
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from inoc_jax.sampling import Sampler, SamplingParams  # pylint: disable=g-import-not-at-top
  model = load_ours(args)
  weight_bytes = sum(x.nbytes for x in jax.tree.leaves(nnx.state(model)))
  params = SamplingParams(max_new_tokens=args.new_tokens)
  rows = {}
  for batch in args.batch_list:
    prompts = prompts_for(model.cfg.vocab_size, batch, args.prompt_len, args.seed)
    sampler = Sampler.from_model(model, batch_size=batch, min_bucket=args.prompt_len,
                                 max_prompt_len=args.prompt_len, progress=False)
    requests = [list(p) for p in prompts]
    start = time.perf_counter()
    sampler.generate(requests, params)
    first = time.perf_counter() - start
    seconds, outputs = float("inf"), None
    for _ in range(args.repeats):
      start = time.perf_counter()
      outputs = sampler.generate(requests, params)
      seconds = min(seconds, time.perf_counter() - start)
    traces = max(max(c.values(), default=0) for c in sampler.trace_counts.values())
    rows[batch] = dict(seconds=seconds, compile_seconds=max(first - seconds, 0.0), traces=traces,
                       tokens=[list(o[0].tokens) for o in outputs])
  return dict(rows=rows, weight_bytes=weight_bytes, vocab_size=model.cfg.vocab_size,
              peak_gib=common.peak_host_memory_gib())


def run_hf(args) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  from bench.hf_reference import load_hf_model  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count() or 1)
  model = load_hf_model(args.model)
  model.generation_config.eos_token_id = None
  kwargs = dict(do_sample=False, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                eos_token_id=None, pad_token_id=0)
  rows = {}
  with torch.inference_mode():
    for batch in args.batch_list:
      ids = torch.as_tensor(prompts_for(model.config.vocab_size, batch, args.prompt_len, args.seed), dtype=torch.long)
      mask = torch.ones_like(ids)
      model.generate(ids[:, :8], attention_mask=mask[:, :8], **{**kwargs, "max_new_tokens": 4,
                                                                 "min_new_tokens": 4})  # warm-up
      seconds, out = float("inf"), None
      for _ in range(args.repeats):
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, **kwargs)
        seconds = min(seconds, time.perf_counter() - start)
      rows[batch] = dict(seconds=seconds, tokens=out[:, args.prompt_len:].tolist())
  return dict(rows=rows, peak_gib=common.peak_host_memory_gib())


def median_rows(results: list[dict], batches: list[int]) -> dict:
  """One side's processes merged: per batch, the row of the process with the median time (lower median)."""
  good = [r for r in results if "rows" in r]
  if not good:
    return next((r for r in results if "error" in r), {"error": "no result"})
  merged = dict(good[0], rows={}, peak_gib=max(r["peak_gib"] for r in good))
  for batch in batches:
    row = common.median_result([r["rows"][str(batch)] for r in good], key="seconds")
    merged["rows"][str(batch)] = dict(row, processes=row["repeats"])
  return merged


def child_args(args, side: str) -> list[str]:
  return [f"--child={side}", f"--model={args.model}", f"--preset={args.preset}", f"--batches={args.batches}",
          f"--prompt_len={args.prompt_len}", f"--new_tokens={args.new_tokens}", f"--repeats={args.repeats}",
          f"--dtype={args.dtype}", f"--seed={args.seed}"]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="smollm2-135m-instruct",
                      help="known name, GGUF file or HF folder; '' = random init of --preset (no HF side)")
  parser.add_argument("--preset", default="smollm2-135m", help="architecture when --model is ''")
  parser.add_argument("--batches", default="1,8,32")
  parser.add_argument("--prompt_len", type=int, default=64)
  parser.add_argument("--new_tokens", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=2, help="timed calls per side; the best is reported")
  parser.add_argument("--dtype", default="float32", help="our compute dtype (HF runs float32)")
  parser.add_argument("--processes", type=int, default=3, help="fresh processes per side, alternating ours / HF")
  parser.add_argument("--allow_noisy", action="store_true", help="run on a busy machine, rows marked noisy")
  parser.add_argument("--skip_hf", action="store_true")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--timeout", type=float, default=3600, help="seconds per side")
  parser.add_argument("--child", choices=("ours", "hf"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  args.batch_list = [int(b) for b in args.batches.split(",")]

  if args.child:
    common.emit_result(run_ours(args) if args.child == "ours" else run_hf(args))
    return
  if not args.skip_hf and not args.model:
    parser.error("the HF side needs a checkpoint: pass --model or --skip_hf")
  quiet = common.quiet_machine_check(args.allow_noisy)
  print(common.load_line("start"))
  common.use_cpu_flags("decode")
  bandwidth = common.memory_bandwidth()
  print(common.machine_line())
  script = os.path.abspath(__file__)
  sides = {"ours": lambda: common.run_child(script, child_args(args, "ours"), timeout=args.timeout)}
  if not args.skip_hf:
    sides["hf"] = lambda: common.run_child(script, child_args(args, "hf"), timeout=args.timeout)
  runs = common.alternate(sides, args.processes)
  ours = median_rows(runs["ours"], args.batch_list)
  if "error" in ours:
    sys.exit(f"our side failed: {ours['error']}")
  hf = median_rows(runs["hf"], args.batch_list) if "hf" in runs else {}
  if "error" in hf:
    print(f"HF side failed: {hf['error']}", file=sys.stderr)
  weight_bytes = ours["weight_bytes"]
  print(f"model: {args.model or args.preset} ({weight_bytes / 2**20:.0f} MiB {args.dtype} weights); memory bandwidth "
        f"{bandwidth / 1e9:.1f} GB/s -> at most {bandwidth / weight_bytes:.1f} decode steps/s\n")
  table = []
  for batch in args.batch_list:
    mine, theirs = ours["rows"][str(batch)], hf.get("rows", {}).get(str(batch))
    generated = batch * args.new_tokens
    ours_tps = generated / mine["seconds"]
    hf_tps = generated / theirs["seconds"] if theirs else None
    same = None
    if theirs:
      same = f"{sum(a == b for a, b in zip(mine['tokens'], theirs['tokens'])) / batch:.2f}"
    table.append([args.model or args.preset, batch, args.prompt_len, args.new_tokens,
                  args.dtype + ("" if quiet else " (noisy)"), ours_tps, hf_tps,
                  f"{ours_tps / hf_tps:.2f}x" if hf_tps else None,
                  f"{ours_tps / (bandwidth / weight_bytes * batch):.0%}", mine["compile_seconds"], mine["traces"],
                  same, mine["processes"]])
  print(common.load_line("end"))
  print(common.markdown_table(
      ["model", "batch", "prompt", "new", "dtype", "ours tok/s", "HF generate tok/s", "ours / HF",
       "of bandwidth limit", "compile s", "compiles", "same greedy rows", "processes"], table))
  print(f"\npeak host memory: ours {ours['peak_gib']:.2f} GiB"
        + (f", HF {hf['peak_gib']:.2f} GiB" if "peak_gib" in hf else ""))


if __name__ == "__main__":
  main()
