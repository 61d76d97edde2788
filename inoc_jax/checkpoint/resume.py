"""The train state a run starts from: its newest good checkpoint, else a fresh (pretrained) init.

Restoring targets the shardings of the *current* mesh, so a run saved on 8
devices resumes on 1 or on a (2, 2, 2) mesh. Nothing is allocated twice: the
restore fills an abstract state; only the frozen base weights of a LoRA run
(not stored by default) are rebuilt, from `model.checkpoint` or the seed, and
verified against the checksums the checkpoint recorded for them.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import jax
import optax
from flax import nnx
from jax.sharding import Mesh

from inoc_jax.checkpoint import tree_codec
from inoc_jax.checkpoint.iterator_state import local_state
from inoc_jax.checkpoint.manager import Checkpointer, Restored
from inoc_jax.errors import CheckpointError
from inoc_jax.model.config import ModelConfig
from inoc_jax.model.lora import LoraConfig
from inoc_jax.model.quantization import QuantConfig
from inoc_jax.model.build import ModelSpec
from inoc_jax.training.train_state import TrainState, abstract_train_state, init_frozen, init_train_state

log = logging.getLogger("inoc_jax")


@dataclasses.dataclass
class StartState:
  graphdef: nnx.GraphDef
  state: TrainState
  shardings: TrainState
  step: int                       # optimizer steps already taken
  data_iterator: dict | None      # this process's iterator state to restore, None for a fresh run
  saved_config: dict | None = None  # the checkpointed run's config (JSON), None for a fresh run
  saved_meta: dict | None = None    # the checkpoint's meta (progress counters, model), None for a fresh run


def run_meta(arch: ModelConfig, lora: LoraConfig | None, model_source: str, base_dtype: str = "float32",
             quant: QuantConfig | None = None) -> dict:
  """What `meta` records about the model so evaluation can rebuild it without the run's config."""
  return {"model_config": arch.to_dict(), "lora": None if lora is None else dataclasses.asdict(lora),
          "model_source": model_source, "base_dtype": base_dtype,
          "base_quant": None if quant is None else dataclasses.asdict(quant)}


def lora_from_meta(meta: dict) -> LoraConfig | None:
  lora = meta.get("lora")
  return None if not lora else LoraConfig(**{**lora, "targets": tuple(lora["targets"])})


def quant_from_meta(meta: dict) -> QuantConfig | None:
  """The frozen base's storage (checkpoints from before model.base_quant hold dense kernels)."""
  quant = meta.get("base_quant")
  return None if not quant else QuantConfig(**quant)


def item_targets(abstract: TrainState, shardings: TrainState) -> tuple[dict, dict]:
  """Abstract trees and shardings per checkpoint item (see manager.py)."""
  def items(state):
    return {"params": state.params, "frozen": state.frozen,
            "optimizer": {"opt_state": state.opt_state, "step": state.step, "rng": state.rng}}
  return items(abstract), items(shardings)


def check_frozen(frozen: Any, restored: Restored, where: str) -> None:
  want = restored.meta.get("frozen_checksums") or {}
  got = tree_codec.checksums(frozen)
  differing = [path for path, value in want.items() if got.get(path) != value]
  if differing or set(got) != set(want):
    raise CheckpointError(
        f"The frozen base weights rebuilt from {where} differ from those checkpoint step {restored.step} was "
        f"trained on (e.g. {(differing or sorted(set(got) ^ set(want)))[:2]}); point model.checkpoint at the "
        "original weights, or save with checkpoint.save_frozen=True.")


def start_state(spec: ModelSpec, tx: optax.GradientTransformation, mesh: Mesh, seed: int,
                checkpointer: Checkpointer | None, load_base: Callable[[], Any] | None,
                base_name: str = "the seed") -> StartState:
  """Restores the newest good checkpoint of `checkpointer`, or initialises.

  Args:
    spec, tx, mesh, seed: as for `init_train_state`.
    checkpointer: the run's checkpoints (None: always initialise).
    load_base: returns the pretrained base weights (nnx.State on their shardings), or None for random init.
    base_name: where the base weights come from, for messages.
  """
  restored = None
  if checkpointer is not None and checkpointer.steps():
    graphdef, abstract, shardings = abstract_train_state(spec, tx, mesh, seed)
    targets, target_shardings = item_targets(abstract, shardings)
    restored = checkpointer.restore_latest(targets, target_shardings)
  if restored is None:
    graphdef, state, shardings = init_train_state(spec, tx, mesh, seed, pretrained=load_base() if load_base else None)
    return StartState(graphdef, state, shardings, 0, None)

  frozen = restored.frozen
  if frozen is None:
    frozen = abstract.frozen
    if jax.tree_util.tree_leaves(abstract.frozen):
      if load_base is not None:
        base = load_base()
        frozen = tree_codec.from_nested(tree_codec.to_nested(base), abstract.frozen)
      else:
        frozen = init_frozen(spec, mesh, seed)
      check_frozen(frozen, restored, base_name)
  optimizer = restored.optimizer
  state = TrainState(step=optimizer["step"], params=restored.params, frozen=frozen,
                     opt_state=optimizer["opt_state"], rng=optimizer["rng"])
  log.info("resumed from checkpoint step %d in %s", restored.step, checkpointer.directory)
  return StartState(graphdef, state, shardings, restored.step, local_state(restored.data_iterator),
                    saved_config=restored.config, saved_meta=restored.meta)
