"""The jitted, sharded train step and held-out loss step.

One `jax.jit` with explicit in/out shardings and the state donated. Gradient
accumulation runs inside the step as a `lax.scan` over micro-batches; every
micro-batch's loss is a *sum* over its supervised tokens and the total is
divided once by the supervised-token count of the whole global batch, so K
micro-batches give exactly the loss and gradient of one big batch even when
the masks are ragged.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from inoc_jax.sharding.mesh import BATCH_AXES, batch_sharding, replicated
from inoc_jax.model.transformer import head_logits
from inoc_jax.training.loss import LossSums, fused_cross_entropy
from inoc_jax.training.masking import next_token_targets, next_token_weights
from inoc_jax.training.train_state import TrainState

# Arrays the device step consumes; all [global_batch, seq] int32.
BATCH_KEYS = ("tokens", "roles", "segment_ids", "positions")


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """Static choices baked into the compiled step.

  Attributes:
    train_on: key of masking.SUPERVISED_ROLES.
    grad_accum_steps: micro-batches per optimizer step (divides the global batch).
    loss_chunk_size: sequence chunk for the cross-entropy (None = whole sequence).
  """

  train_on: str = "assistant"
  grad_accum_steps: int = 1
  loss_chunk_size: int | None = None

  @classmethod
  def from_config(cls, config) -> "StepOptions":
    """The run's choices: loss.train_on, train.grad_accum_steps, loss.chunk_size (0 = whole sequence)."""
    return cls(train_on=config.loss.train_on, grad_accum_steps=config.train.grad_accum_steps,
               loss_chunk_size=config.loss.chunk_size or None)


def loss_sums(graphdef: nnx.GraphDef, params, frozen, batch: dict[str, jax.Array], options: StepOptions,
              dropout_rng: jax.Array | None) -> LossSums:
  """Summed next-token NLL / accuracy of `batch` under the merged model.

  The head's gradients come from `fused_cross_entropy` (no rematerialised logits); the head is
  trained unless it is frozen (LoRA), i.e. unless its weights are missing from `params`.
  """
  model = nnx.merge(graphdef, params, frozen)
  hidden, _ = model.hidden_states(batch["tokens"], batch["positions"], batch["segment_ids"],
                                  dropout_rng=dropout_rng)
  weights = next_token_weights(batch["roles"], batch["segment_ids"], options.train_on)
  targets = next_token_targets(batch["tokens"])
  head_graphdef, head_state = nnx.split(model.head)
  head_trainable = ("embedder" if model.lm_head is None else "lm_head") in params
  softcap = model.cfg.final_logit_softcap
  return fused_cross_entropy(hidden, lambda state, h: head_logits(nnx.merge(head_graphdef, state), h, softcap),
                             head_state, targets, weights, options.loss_chunk_size, head_trainable=head_trainable)


def _split_micro_batches(batch: dict[str, jax.Array], k: int, mesh: Mesh) -> dict[str, jax.Array]:
  """[B, T] -> [k, B/k, T], micro-batch i = rows i, i+k, i+2k, ...

  Strided rows keep every micro-batch spread over all data-parallel shards.
  """
  def split(x):
    b = x.shape[0]
    x = x.reshape((b // k, k) + x.shape[1:]).swapaxes(0, 1)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(None, BATCH_AXES)))
  return {key: split(x) for key, x in batch.items()}


class TrainStep:
  """Compiled train step: state, batch -> (state, metrics).

  `trace_count` counts Python traces of the step (a test asserts it stays 1).
  """

  def __init__(self, graphdef: nnx.GraphDef, tx: optax.GradientTransformation, schedule: optax.Schedule,
               options: StepOptions, mesh: Mesh, state_shardings: TrainState):
    self.trace_count = 0
    self.options = options
    self._graphdef, self._tx, self._schedule, self._mesh = graphdef, tx, schedule, mesh
    batch_shardings = {key: batch_sharding(mesh) for key in BATCH_KEYS}
    self._jitted = jax.jit(self._step, in_shardings=(state_shardings, batch_shardings),
                           out_shardings=(state_shardings, replicated(mesh)), donate_argnums=(0,))

  def __call__(self, state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
    with jax.set_mesh(self._mesh):  # activation constraints (sharding/activations.py) read the mesh
      return self._jitted(state, {key: batch[key] for key in BATCH_KEYS})

  def lower(self, state, batch):
    """Lowers for these (possibly abstract `jax.ShapeDtypeStruct`) inputs; `.compile()` it for AOT checks."""
    with jax.set_mesh(self._mesh):
      return self._jitted.lower(state, {key: batch[key] for key in BATCH_KEYS})

  def _step(self, state: TrainState, batch: dict[str, jax.Array]):
    self.trace_count += 1
    options, k = self.options, self.options.grad_accum_steps
    step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    global_count = jnp.sum(next_token_weights(batch["roles"], batch["segment_ids"], options.train_on))
    normaliser = jnp.maximum(global_count, 1.0)

    def micro_grads(micro_batch, micro_index):
      def objective(params):
        sums = loss_sums(self._graphdef, params, state.frozen, micro_batch, options,
                         jax.random.fold_in(step_key, micro_index))
        return sums.nll / normaliser, sums
      return jax.grad(objective, has_aux=True)(state.params)

    if k == 1:
      grads, sums = micro_grads(batch, 0)
    else:
      micro = _split_micro_batches(batch, k, self._mesh)

      def body(carry, xs):
        acc_grads, acc_sums = carry
        grads, sums = micro_grads(xs[0], xs[1])
        return (jax.tree.map(jnp.add, acc_grads, grads), jax.tree.map(jnp.add, acc_sums, sums)), None

      zeros = jax.tree.map(jnp.zeros_like, state.params)
      zero_sums = LossSums(*(jnp.zeros((), jnp.float32) for _ in LossSums._fields))
      (grads, sums), _ = jax.lax.scan(body, (zeros, zero_sums), (micro, jnp.arange(k)))

    updates, opt_state = self._tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": sums.nll / normaliser,
        "token_accuracy": sums.correct / normaliser,
        "supervised_token_count": sums.supervised_token_count,
        "grad_norm": optax.tree.norm(grads),
        "learning_rate": jnp.asarray(self._schedule(state.step), jnp.float32),
    }
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics


class EvalStep:
  """Compiled held-out loss: state, batch -> summed NLL / accuracy / count (no dropout)."""

  def __init__(self, graphdef: nnx.GraphDef, options: StepOptions, mesh: Mesh, state_shardings: TrainState):
    batch_shardings = {key: batch_sharding(mesh) for key in BATCH_KEYS}
    param_shardings = (state_shardings.params, state_shardings.frozen)

    def run(params, frozen, batch):
      return loss_sums(graphdef, params, frozen, batch, options, None)

    self._mesh = mesh
    self._jitted = jax.jit(run, in_shardings=(*param_shardings, batch_shardings), out_shardings=replicated(mesh))

  def __call__(self, state: TrainState, batch: dict[str, jax.Array]) -> LossSums:
    with jax.set_mesh(self._mesh):
      return self._jitted(state.params, state.frozen, {key: batch[key] for key in BATCH_KEYS})
