"""LoRA with the frozen base stored each way: `model.base_dtype` float32 / bfloat16, or `model.base_quant` int8 /
nf4 (QLoRA); the losses of the same steps, and the memory.

    python bench/base_dtype.py                       # SmolLM2-135M-Instruct, the paper's GCD LoRA, 8 steps
    python bench/base_dtype.py --steps=4 --bases=float32,nf4 --preset=tiny   # a random-init preset

Each base trains the same run (same data order and adapter init; only the base's storage differs) through
the training CLI in its own process. Prints the loss of every step, the frozen base's bytes per weight (all
frozen weights, and the blocks' projection kernels alone, which are what int8 / nf4 quantise) and each
process's peak resident memory (which also holds the data, the compiled programs and the GGUF reader).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frozen_bytes_per_weight(overrides: list[str]) -> tuple[float, float]:
  """Bytes per frozen weight of the run's train state: all of them, and the blocks' kernels alone (abstract
  shapes, nothing allocated; quantised kernels count their scales)."""
  sys.path.insert(0, REPO)
  import jax  # pylint: disable=g-import-not-at-top
  from inoc_jax import config_lib  # pylint: disable=g-import-not-at-top
  from inoc_jax.aot.memory import tree_bytes  # pylint: disable=g-import-not-at-top
  from inoc_jax.model import build  # pylint: disable=g-import-not-at-top
  from inoc_jax.model.config import get_preset  # pylint: disable=g-import-not-at-top
  from inoc_jax.sharding.mesh import make_mesh  # pylint: disable=g-import-not-at-top
  from inoc_jax.training.optimizer import make_optimizer  # pylint: disable=g-import-not-at-top
  from inoc_jax.training.train_state import (  # pylint: disable=g-import-not-at-top
      abstract_train_state, param_count, total_param_count)
  from inoc_jax.weights.pretrained import open_pretrained  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config(overrides[0].split("=", 1)[1], [o.removeprefix("--config.") for o in overrides[1:]])
  arch = (open_pretrained(config.model.checkpoint).model_config if config.model.checkpoint
          else get_preset(config.model.preset))
  state = abstract_train_state(build.training_spec(config, arch), make_optimizer(config.optim, 10)[0],
                               make_mesh({"data": 1}))[1]
  frozen_weights = total_param_count(state, arch) - param_count(state.params)
  kernel_bytes = sum(tree_bytes(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(state.frozen)
                     if "layers" in jax.tree_util.keystr(path) and "kernel" in jax.tree_util.keystr(path))
  return tree_bytes(state.frozen) / frozen_weights, kernel_bytes / (frozen_weights - _outside_kernels(arch))


def _outside_kernels(arch) -> int:
  """Frozen weights that are not a block's projection kernel: embedding, head, norms, biases."""
  d, h = arch.d_model, arch.head_dim
  per_block = (4 if arch.post_norms else 2) * d + (2 * h if arch.qk_norm else 0)
  per_block += h * (arch.num_heads + 2 * arch.num_kv_heads) if arch.qkv_bias else 0
  return arch.vocab_size * d * (1 if arch.tie_embeddings else 2) + d + arch.num_layers * per_block


def run(overrides: list[str], workdir: str) -> dict:
  """One training process; returns its losses and peak RSS (GiB)."""
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  with tempfile.TemporaryFile("w+") as log:
    proc = subprocess.Popen([sys.executable, "-m", "inoc_jax.train", *overrides, f"--workdir={workdir}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS)
    if os.waitstatus_to_exitcode(status) != 0:
      log.seek(0)
      sys.exit(f"the run failed:\n{log.read()[-3000:]}")
  losses = [json.loads(line)["train/loss"] for line in open(os.path.join(workdir, "metrics.jsonl"))
            if "train/loss" in line]
  return {"losses": losses, "peak_gib": usage.ru_maxrss / 2**20}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default=os.path.join(REPO, "configs", "sycophancy.py"))
  parser.add_argument("--preset", default="", help="a random-init model preset instead of the config's model")
  parser.add_argument("--bases", default="float32,bfloat16,int8,nf4",
                      help="float32 / bfloat16 (model.base_dtype) and int8 / nf4 (model.base_quant)")
  parser.add_argument("--quant_block_size", type=int, default=64, help="nf4 weights per absmax")
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--batch", type=int, default=2)
  args = parser.parse_args()
  common = [f"--config={args.config}", f"--config.train.num_steps={args.steps}",
            f"--config.data.global_batch_size={args.batch}", "--config.train.grad_accum_steps=1",
            f"--config.data.num_train_examples={args.steps * args.batch}", "--config.data.num_heldout_examples=0",
            "--config.eval.initial=False", "--config.eval.at_end=False", "--config.train.log_every=1",
            "--config.checkpoint.enabled=False", "--config.lora.enabled=True"]
  if args.preset:
    common += ["--config.model.checkpoint=", f"--config.model.preset={args.preset}", "--config.data.tokenizer=byte"]
  print(f"load average at start: {os.getloadavg()[0]:.2f}")
  rows = {}
  with tempfile.TemporaryDirectory() as tmp:
    for base in args.bases.split(","):
      storage = ([f"--config.model.base_quant={base}", f"--config.model.quant_block_size={args.quant_block_size}"]
                 if base in ("int8", "nf4") else [f"--config.model.base_dtype={base}"])
      overrides = [*common, *storage]
      rows[base] = {**run(overrides, os.path.join(tmp, base)), "bytes": frozen_bytes_per_weight(overrides)}
  print(f"load average at end: {os.getloadavg()[0]:.2f}")
  first = next(iter(rows.values()))["losses"]
  print("| base | bytes / frozen weight | bytes / block-kernel weight | peak RSS GiB | losses of steps 1.. | "
        "max |loss - first row's| |")
  print("|---|---|---|---|---|---|")
  for base, row in rows.items():
    gap = max(abs(a - b) for a, b in zip(row["losses"], first))
    print(f"| {base} | {row['bytes'][0]:.3f} | {row['bytes'][1]:.3f} | {row['peak_gib']:.2f} | "
          f"{' '.join(f'{x:.4f}' for x in row['losses'])} | {gap:.4f} |")


if __name__ == "__main__":
  main()
