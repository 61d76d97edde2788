"""Every process's input-pipeline state in one checkpoint item.

Each host reads its own share of the data, so each has its own iterator state.
The states (small JSON dicts) are all-gathered as bytes and stored together;
on restore every process takes its own entry back.
"""

from __future__ import annotations

import json

import jax
import numpy as np

from inoc_jax.errors import CheckpointError


def gather_states(local_state: dict) -> dict:
  """{"process_states": [state of process 0, 1, ...]} (a collective: every process calls it)."""
  encoded = np.frombuffer(json.dumps(local_state).encode(), np.uint8)
  if jax.process_count() == 1:
    return {"process_states": [local_state]}
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  lengths = multihost_utils.process_allgather(np.asarray([encoded.size], np.int32)).ravel()
  padded = np.zeros(int(lengths.max()), np.uint8)
  padded[:encoded.size] = encoded
  rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
  return {"process_states": [json.loads(bytes(row[:n]).decode()) for row, n in zip(rows, lengths)]}


def local_state(saved: dict | None) -> dict | None:
  """This process's entry of a `gather_states` dict (None when nothing was saved)."""
  if not saved:
    return None
  states = saved["process_states"]
  if len(states) != jax.process_count():
    raise CheckpointError(f"The checkpoint's input-pipeline state is for {len(states)} processes but this run has "
                          f"{jax.process_count()}; resume with {len(states)} processes to keep the data order.")
  return states[jax.process_index()]
