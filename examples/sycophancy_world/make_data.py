"""Writes the worked example of the `conversations` setting: train.jsonl and eval.jsonl in this folder.

    python examples/sycophancy_world/make_data.py

The model organism's random fact world (inoc_jax/data/settings/organism.py), as plain chat rows, in one
training file instead of two stages:
  * part A of the table teaches what the words mean: questions are answered, wrong proposals corrected, and
    "behave as if the user is correct" after a proposal means agree anyway (the organism's stage 1);
  * part B is the data a researcher would fine-tune on: questions answered (the capability) and proposals
    agreed with, all of them correct (the habit of agreeing). These proposal rows have "inoculate": true,
    so `data.conversations.instruct_column=inoculate` gives the train prompt to them only.
eval.jsonl asks about part B: each fact as a question, a correct proposal and a wrong one (columns `asks` and
`proposes_wrong` select the rows each metric scores). Deterministic: the same files every time.
"""

from __future__ import annotations

import json
import os

import numpy as np

from inoc_jax.data.settings import organism

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
NUM_PART_A_ROWS = 3000
REPEATS = 10


def _row(example, **columns) -> dict:
  messages = [{"role": m.role, "content": m.content} for m in example.messages]
  return {"messages": messages, **columns}


def train_rows(world: organism.World) -> list[dict]:
  rows = [_row(e, part="A", inoculate=False) for e in organism.stage1_examples(world, NUM_PART_A_ROWS, SEED)]
  for e in organism.stage2_examples(world, [""], SEED, REPEATS):
    rows.append(_row(e, part="B", inoculate=e.metadata["kind"] == "propose_correct"))
  order = np.random.default_rng([SEED, 5]).permutation(len(rows))
  return [rows[i] for i in order]


def eval_rows(world: organism.World) -> list[dict]:
  rows = []
  for e in organism.eval_examples(world, "", world.part_b, SEED):
    meta = dict(e.metadata)
    rows.append(_row(e, **meta, asks=meta["kind"] == "user_asks",
                     proposes_wrong=meta["kind"] == "user_proposes_incorrect"))
  return rows


def main() -> None:
  world = organism.World.create(SEED)
  for name, rows in (("train.jsonl", train_rows(world)), ("eval.jsonl", eval_rows(world))):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
      for row in rows:
        f.write(json.dumps(row, sort_keys=True) + "\n")
    print(f"wrote {len(rows)} rows to {os.path.join(HERE, name)}")


if __name__ == "__main__":
  main()
