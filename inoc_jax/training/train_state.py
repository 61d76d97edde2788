"""The train state and its sharded initialisation.

The model is split once into a static `graphdef` and two pytrees: `params`
(what the optimizer updates: LoRA adapters, or every weight for full
fine-tuning) and `frozen` (the base weights under LoRA; empty otherwise).
Initialisation never builds the full model on one device: the state's shapes
come from `jax.eval_shape`, its shardings from the rule table, and a jitted
init writes every leaf straight into its shard.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from inoc_jax.model.build import ModelSpec
from inoc_jax.model.config import ModelConfig, count_params
from inoc_jax.model.layers import redraw_adapters
from inoc_jax.sharding import rules


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training (and is checkpointed).

  Attributes:
    step: int32 scalar, optimizer steps taken.
    params: nnx.State of the trainable leaves.
    frozen: nnx.State of the frozen leaves (empty for full fine-tuning).
    opt_state: optax state for `params`.
    rng: uint32[2] raw key data for dropout (folded with the step).
  """

  step: jax.Array
  params: Any
  frozen: Any
  opt_state: Any
  rng: jax.Array


def state_shardings(abstract_state: TrainState, mesh: Mesh) -> TrainState:
  return rules.tree_shardings(abstract_state, mesh)


def init_train_state(spec: ModelSpec, tx: optax.GradientTransformation, mesh: Mesh, seed: int,
                     pretrained: Any | None = None) -> tuple[nnx.GraphDef, TrainState, TrainState]:
  """Creates the sharded train state.

  Args:
    spec: model builder and trainable filter.
    tx: optimizer (its state is initialised for `params` only).
    mesh: device mesh.
    seed: parameter-init / dropout seed.
    pretrained: optional nnx.State of `nnx.Param` leaves (base weights, already
      placed on their shards, see `base_param_shardings`). They replace the random
      init inside the jitted init (XLA drops the unused random init) and are donated.

  Returns:
    (graphdef, state, state_shardings).
  """
  graphdef, _, _ = spec.abstract()
  init, init_key = _state_initializer(spec, tx, seed)
  abstract_state = jax.eval_shape(init, init_key, pretrained)
  shardings = state_shardings(abstract_state, mesh)
  state = jax.jit(init, out_shardings=shardings, donate_argnums=(1,))(init_key, pretrained)
  return graphdef, state, shardings


def _state_initializer(spec: ModelSpec, tx: optax.GradientTransformation, seed: int):
  """(init(key, pretrained) -> TrainState, init key): the one definition of a fresh state."""
  init_key, dropout_key = jax.random.split(jax.random.key(seed))

  def init(key, weights):
    model = spec.build(nnx.Rngs(params=key))
    redraw_adapters(model, jax.random.fold_in(key, 1))
    if weights is not None:
      nnx.update(model, weights)
    _, params, frozen = spec.split(model)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, frozen=frozen, opt_state=tx.init(params),
                      rng=jax.random.key_data(dropout_key))

  return init, init_key


def abstract_train_state(spec: ModelSpec, tx: optax.GradientTransformation, mesh: Mesh, seed: int = 0
                         ) -> tuple[nnx.GraphDef, TrainState, TrainState]:
  """The train state as `jax.ShapeDtypeStruct`s carrying their shardings; allocates nothing.

  What ahead-of-time compilation (`TrainStep.lower`) and checkpoint restore
  targets need: the exact shapes, dtypes and shardings `init_train_state` would
  produce, for any model size, without touching device memory.

  Returns:
    (graphdef, abstract state, state shardings).
  """
  graphdef, _, _ = spec.abstract()
  init, init_key = _state_initializer(spec, tx, seed)
  shapes = jax.eval_shape(init, init_key, None)
  shardings = state_shardings(shapes, mesh)
  abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
  return graphdef, abstract, shardings


def init_frozen(spec: ModelSpec, mesh: Mesh, seed: int) -> Any:
  """The frozen leaves `init_train_state(spec, ..., seed)` creates (random init), computed alone.

  Uses the same key derivation as `init_train_state`, so a LoRA run's random-init base is rebuilt
  bit for bit from its seed when the checkpoint does not store it.
  """
  init, key = _state_initializer(spec, optax.identity(), seed)
  abstract = jax.eval_shape(lambda k: init(k, None).frozen, key)
  return jax.jit(lambda k: init(k, None).frozen, out_shardings=rules.tree_shardings(abstract, mesh))(key)


def param_count(tree: Any) -> int:
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(tree))


def total_param_count(state: TrainState, arch: ModelConfig) -> int:
  """Weights of the model `state` trains: the architecture's, plus adapters when the base is frozen.

  Counted from the architecture, not the frozen tree, whose quantised kernels hold two NF4 codes per
  element and carry scales beside them.
  """
  frozen_base = bool(jax.tree_util.tree_leaves(state.frozen))
  return count_params(arch) + (param_count(state.params) if frozen_base else 0)
