"""Training throughput: our train step beside HF transformers (+ PEFT), same model, batch, data and AdamW.

    python bench/train.py                                   # SmolLM2-135M-Instruct (offline GGUF), 8 x 256,
                                                            # full fine-tune and LoRA r=8, float32 and bfloat16
    python bench/train.py --modes=full --dtypes=float32 --steps=3
    python bench/train.py --model= --preset=tiny --skip_hf  # random init, no torch needed

The fp32 and bf16 limits of a jitted 2048x2048 matmul are measured first;
then every (tuning, dtype) runs once per side, each side in its own process
(so its peak host memory, VmHWM, is its own). Both sides train on the same
random token batch (loss on every next token), with AdamW (lr 1e-4, weight
decay 0.01); bf16 means bf16 compute with fp32 master weights (ours:
`model.dtype=bfloat16`; HF: `torch.autocast(bfloat16)`). LoRA is r=8,
alpha=16, rsLoRA scaling, no dropout, on q,k,v,o,gate,up,down (PEFT on HF).

Timing: one warm-up step (its time minus the median step is the compile time;
HF's first step is its warm-up), then --steps steps; tokens/s = batch·seq /
median step seconds. Each side runs --repeats times in fresh processes,
alternating ours / HF, and the row reports the median repeat. The run refuses
to start when the 1-minute load average exceeds 1.0 (--allow_noisy marks the
rows "noisy" instead) and prints the load before and after. MFU = tokens/s x model FLOPs per token (bench/flops.py:
6·N_mm + 12·L·H·hd·s for full fine-tuning, 4·N_mm + 6·N_lora + 12·L·H·hd·s
for LoRA) / the matmul limit of the same dtype. The first-step loss of both
sides is printed as a check that they compute the same thing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # pylint: disable=g-import-not-at-top

LORA_TARGETS = "q,k,v,o,gate,up,down"
HF_LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def synthetic_tokens(vocab_size: int, batch: int, seq_len: int, seed: int):
  import numpy as np  # pylint: disable=g-import-not-at-top
  return np.random.default_rng(seed).integers(3, vocab_size, (batch, seq_len)).astype(np.int32)


def timed_steps(step_fn, steps: int) -> tuple[float, list[float]]:
  """(seconds of the first call, seconds of each of the next `steps` calls); step_fn blocks."""
  start = time.perf_counter()
  step_fn()
  first = time.perf_counter() - start
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step_fn()
    times.append(time.perf_counter() - start)
  return first, times


def bench_config(args, lora: bool):
  """The project config a training run with these benchmark settings would use."""
  from inoc_jax.config_defaults import base_config  # pylint: disable=g-import-not-at-top
  config = base_config()
  config.model.checkpoint = args.model
  config.model.preset = args.preset
  config.model.dtype = args.dtype
  if args.remat:
    config.model.remat = args.remat
  if args.loss_chunk >= 0:
    config.loss.chunk_size = args.loss_chunk
  config.lora.enabled = lora
  config.lora.rank = args.lora_rank
  config.lora.alpha = 2.0 * args.lora_rank
  config.lora.targets = LORA_TARGETS
  config.optim.lr = 1e-4
  config.optim.weight_decay = 0.01
  config.data.global_batch_size = args.batch
  config.data.seq_len = args.seq_len
  return config


def run_ours(args) -> dict:
  common.use_cpu_flags("train")
  from inoc_jax.runtime.host_memory import keep_freed_host_memory  # pylint: disable=g-import-not-at-top
  keep_freed_host_memory()  # with INOC_JAX_HOST_MALLOC=keep, as the inoc_jax commands (inoc_jax.cli.friendly)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bench.flops import train_flops_per_token  # pylint: disable=g-import-not-at-top
  from inoc_jax.model import build  # pylint: disable=g-import-not-at-top
  from inoc_jax.data.roles import Role  # pylint: disable=g-import-not-at-top
  from inoc_jax.model.config import get_preset  # pylint: disable=g-import-not-at-top
  from inoc_jax.sharding.mesh import batch_sharding, make_mesh  # pylint: disable=g-import-not-at-top
  from inoc_jax.training.optimizer import make_optimizer  # pylint: disable=g-import-not-at-top
  from inoc_jax.training.train_state import init_train_state, param_count  # pylint: disable=g-import-not-at-top
  from inoc_jax.training.train_step import StepOptions, TrainStep  # pylint: disable=g-import-not-at-top
  from inoc_jax.weights.pretrained import open_pretrained  # pylint: disable=g-import-not-at-top

  config = bench_config(args, args.mode == "lora")
  pretrained = open_pretrained(args.model) if args.model else None
  arch = pretrained.model_config if pretrained else get_preset(args.preset)
  mesh = make_mesh({"data": -1})
  spec = build.training_spec(config, arch)
  tx, schedule = make_optimizer(config.optim, args.steps + 1)
  base = pretrained.load(spec, mesh) if pretrained else None
  graphdef, state, shardings = init_train_state(spec, tx, mesh, args.seed, pretrained=base)
  del base
  peak_after_init = common.peak_host_memory_gib()
  train_step = TrainStep(graphdef, tx, schedule, StepOptions.from_config(config), mesh, shardings)
  tokens = synthetic_tokens(arch.vocab_size, args.batch, args.seq_len, args.seed)
  host = {"tokens": tokens, "roles": np.full_like(tokens, int(Role.ASSISTANT)), "segment_ids": np.ones_like(tokens),
          "positions": np.broadcast_to(np.arange(args.seq_len, dtype=np.int32), tokens.shape).copy()}
  batch = {k: jax.device_put(v, batch_sharding(mesh)) for k, v in host.items()}
  losses = []

  def step():
    nonlocal state
    state, metrics = train_step(state, batch)
    losses.append(float(metrics["loss"]))  # blocks on the step

  first, times = timed_steps(step, args.steps)
  median = statistics.median(times)
  peak = common.peak_host_memory_gib()
  profile = None
  if args.profile_dir:
    from bench.trace_summary import summarize  # pylint: disable=g-import-not-at-top
    trace_dir = os.path.join(args.profile_dir, f"{args.mode}-{args.dtype}")
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(2):
        step()
    hlo_text = train_step.lower(state, batch).compile().as_text()
    with open(os.path.join(trace_dir, "step.hlo.txt"), "w", encoding="utf-8") as f:
      f.write(hlo_text)  # for reading the trace further (bench/trace_summary.py op_sources)
    profile = summarize(trace_dir, hlo_text, steps=2)
  return dict(tokens_per_second=args.batch * args.seq_len / median, step_seconds=median, profile=profile,
              compile_seconds=max(first - median, 0.0), first_loss=losses[0], traces=train_step.trace_count,
              flops_per_token=train_flops_per_token(arch, args.seq_len, build.lora_config(config)),
              trainable=param_count(state.params), peak_gib=peak, peak_after_init_gib=peak_after_init)


def run_hf(args) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  from bench.hf_reference import load_hf_model  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count() or 1)
  torch.manual_seed(args.seed)
  model = load_hf_model(args.model)
  if args.mode == "lora":
    import peft  # pylint: disable=g-import-not-at-top
    model = peft.get_peft_model(model, peft.LoraConfig(
        r=args.lora_rank, lora_alpha=2.0 * args.lora_rank, lora_dropout=0.0, use_rslora=True,
        target_modules=HF_LORA_MODULES, task_type="CAUSAL_LM"))
  model.train()
  trainable = [p for p in model.parameters() if p.requires_grad]
  optimizer = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
  ids = torch.as_tensor(synthetic_tokens(model.config.vocab_size, args.batch, args.seq_len, args.seed),
                        dtype=torch.long)
  losses = []

  def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bfloat16"):
      loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    losses.append(float(loss))

  first, times = timed_steps(step, args.steps)
  median = statistics.median(times)
  return dict(tokens_per_second=args.batch * args.seq_len / median, step_seconds=median,
              compile_seconds=None, first_loss=losses[0], trainable=sum(p.numel() for p in trainable),
              peak_gib=common.peak_host_memory_gib())


def child_args(args, side: str, mode: str, dtype: str) -> list[str]:
  return [f"--child={side}", f"--modes={mode}", f"--dtypes={dtype}", f"--model={args.model}",
          f"--preset={args.preset}", f"--batch={args.batch}", f"--seq_len={args.seq_len}", f"--steps={args.steps}",
          f"--lora_rank={args.lora_rank}", f"--remat={args.remat}", f"--loss_chunk={args.loss_chunk}",
          f"--seed={args.seed}", f"--profile_dir={args.profile_dir}"]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="smollm2-135m-instruct",
                      help="checkpoint (known name, GGUF file, HF folder); '' = random init of --preset")
  parser.add_argument("--preset", default="smollm2-135m", help="architecture when --model is ''")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--seq_len", type=int, default=256)
  parser.add_argument("--modes", default="full,lora", help="full and/or lora")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up step")
  parser.add_argument("--lora_rank", type=int, default=8)
  parser.add_argument("--remat", default="", help="model.remat override ('' = the config default)")
  parser.add_argument("--loss_chunk", type=int, default=-1, help="loss.chunk_size override (-1 = config default)")
  parser.add_argument("--skip_hf", action="store_true", help="only our side (no torch needed)")
  parser.add_argument("--profile_dir", default="", help="also trace 2 of our steps there and print where time goes")
  parser.add_argument("--matmul_size", type=int, default=2048, help="side of the square matmul of the limit")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--repeats", type=int, default=3, help="processes per side, alternating ours / HF")
  parser.add_argument("--allow_noisy", action="store_true", help="run on a busy machine, rows marked noisy")
  parser.add_argument("--timeout", type=float, default=3600, help="seconds per side")
  parser.add_argument("--child", choices=("ours", "hf"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  modes, dtypes = args.modes.split(","), args.dtypes.split(",")

  if args.child:
    args.mode, args.dtype = modes[0], dtypes[0]
    common.emit_result(run_ours(args) if args.child == "ours" else run_hf(args))
    return

  if args.skip_hf is False and not args.model:
    parser.error("the HF side needs a checkpoint: pass --model or --skip_hf")
  quiet = common.quiet_machine_check(args.allow_noisy)
  print(common.load_line("start"))
  common.use_cpu_flags("train")
  limits = {dtype: common.matmul_limit(dtype, args.matmul_size) for dtype in dtypes}
  print(common.machine_line())
  print(f"matmul limit (jitted {args.matmul_size}x{args.matmul_size}): " + ", ".join(f"{d} {v / 1e9:.0f} GFLOP/s" for d, v in limits.items()))
  print(f"model: {args.model or 'random init'} ({args.preset if not args.model else 'architecture from the file'}),"
        f" batch {args.batch} x {args.seq_len}, AdamW, {args.steps} timed steps\n", flush=True)
  script = os.path.abspath(__file__)
  rows, profiles = [], []
  for mode in modes:
    for dtype in dtypes:
      sides = {"ours": lambda: common.run_child(script, child_args(args, "ours", mode, dtype), timeout=args.timeout)}
      if not args.skip_hf:
        sides["hf"] = lambda: common.run_child(script, child_args(args, "hf", mode, dtype), timeout=args.timeout)
      runs = common.alternate(sides, args.repeats)
      ours = common.median_result(runs["ours"])
      hf = common.median_result(runs["hf"]) if "hf" in runs else {}
      for side, result in (("ours", ours), ("HF", hf)):
        if "error" in result:
          print(f"{side} {mode} {dtype} failed: {result['error']}", file=sys.stderr)
      ours_tps, hf_tps = ours.get("tokens_per_second"), hf.get("tokens_per_second")
      flops = ours.get("flops_per_token")
      mfu = lambda tps, dtype=dtype, flops=flops: None if tps is None or flops is None else tps * flops / limits[dtype]
      tuning = "full" if mode == "full" else f"LoRA r={args.lora_rank}"
      if ours.get("profile"):
        profiles.append(f"### ours, {mode}, {dtype}\n\n{ours['profile']}")
      rows.append([args.model or args.preset, tuning + ("" if quiet else " (noisy)"), dtype,
                   f"{args.batch}x{args.seq_len}", ours_tps, hf_tps,
                   None if not (ours_tps and hf_tps) else f"{ours_tps / hf_tps:.2f}x",
                   None if mfu(ours_tps) is None else f"{mfu(ours_tps):.0%}",
                   None if mfu(hf_tps) is None else f"{mfu(hf_tps):.0%}",
                   ours.get("peak_gib"), hf.get("peak_gib"), ours.get("compile_seconds"), ours.get("traces"),
                   ours.get("first_loss"), hf.get("first_loss"), ours.get("repeats")])
      print(f"{mode} {dtype}: ours {ours_tps or 0:.1f} tok/s (peak host memory {ours.get('peak_gib', 0):.2f} GiB, "
            f"{ours.get('peak_after_init_gib', 0):.2f} GiB before the first step)"
            + (f", HF {hf_tps:.1f} tok/s" if hf_tps else ""), flush=True)
  print()
  print(common.load_line("end"))
  print(common.markdown_table(
      ["model", "tuning", "dtype", "batch", "ours tok/s", "HF tok/s", "ours / HF", "ours MFU", "HF MFU",
       "ours peak GiB", "HF peak GiB", "compile s", "compiles", "loss ours", "loss HF", "repeats"], rows))
  for profile in profiles:
    print("\n" + profile)


if __name__ == "__main__":
  main()
