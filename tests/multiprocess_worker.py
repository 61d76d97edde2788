"""One process of a multi-process test job: the real `inoc_jax.train` CLI plus a parameter recorder.

  python tests/multiprocess_worker.py RECORD_DIR -- <inoc_jax.train flags>

The recorder wraps the trainer's TrainStep and, after every step, saves this
process's addressable shards of the trainable parameters to
RECORD_DIR/params_p<process_index>.npz (with the global shapes in a JSON
sidecar). It needs no collective, so it cannot hang a job, and the test
reassembles the global arrays from every process's shards.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

import jax
import numpy as np

from inoc_jax import trainer
from inoc_jax.sharding.rules import path_to_str
from inoc_jax.training import train_step as train_step_lib


def _slice_key(index: tuple[slice, ...], shape: tuple[int, ...]) -> str:
  parts = [f"{s.start or 0}:{dim if s.stop is None else s.stop}" for s, dim in zip(index, shape)]
  return ",".join(parts)


def save_local_shards(tree, record_dir: str) -> None:
  arrays, shapes = {}, {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    name = path_to_str(path)
    shapes[name] = list(leaf.shape)
    for shard in leaf.addressable_shards:
      arrays[f"{name}|{_slice_key(shard.index, leaf.shape)}"] = np.asarray(shard.data)
  rank = jax.process_index()
  tmp = os.path.join(record_dir, f"params_p{rank}.tmp.npz")
  np.savez(tmp, **arrays)
  os.replace(tmp, os.path.join(record_dir, f"params_p{rank}.npz"))
  with open(os.path.join(record_dir, "shapes.json"), "w", encoding="utf-8") as f:
    json.dump(shapes, f)


def main() -> None:
  record_dir, separator, *train_args = sys.argv[1:]
  assert separator == "--", "usage: multiprocess_worker.py RECORD_DIR -- <train flags>"
  os.makedirs(record_dir, exist_ok=True)

  class RecordingTrainStep(train_step_lib.TrainStep):

    def __call__(self, state, batch):
      state, metrics = super().__call__(state, batch)
      jax.block_until_ready(state.params)
      save_local_shards(state.params, record_dir)
      return state, metrics

  trainer.TrainStep = RecordingTrainStep
  sys.argv = ["inoc_jax.train", *train_args]
  runpy.run_module("inoc_jax.train", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
