"""The device side of sampling: prefill, then a `lax.while_loop` decode over a fixed KV cache.

Both are pure functions of (model state, sampling state, knobs); `Sampler`
jits prefill once per prompt bucket and decode once per cache shape, with the
model and cache sharded on the mesh and the sampling state donated, so the cache
is updated in place.

Layout of one batch of B rows, prompt bucket W, N new tokens and a cache of
C >= W + N slots (C = the widest bucket of the `generate` call + N, so buckets
share one decode program; slots past W + N stay empty, segment 0, masked):

  cache slots  [0 ........ W) [W ............ W+N) [W+N ..... C)
               left-padded     one slot per decode step   unused
               prompts         (all rows write the same slot)

Each row's positions count from its first real prompt token, so a token's
position differs from its cache slot by the row's left padding.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from inoc_jax.model.transformer import DecodeCache, init_cache
from inoc_jax.sampling.logits import sample_tokens
from inoc_jax.sampling.params import SamplingMode


@flax.struct.dataclass
class SamplingState:
  """Everything the decode loop carries.

  Attributes:
    cache: the model's KV cache, [B, C] slots (C >= W + N).
    tokens: int32 [B, N] generated tokens (0 after a row is done).
    last_token: int32 [B] the token to feed next.
    last_position: int32 [B] its position in the row's sequence.
    row_segment: int32 [B] 1 for rows that serve a request, 0 for batch padding.
    done: bool [B] row has emitted a stop token (or is padding / was stopped).
    step: int32 scalar, tokens generated so far (columns of `tokens` filled).
    row_keys: uint32 [B, key] raw PRNG key data of each row.
  """

  cache: DecodeCache
  tokens: jax.Array
  last_token: jax.Array
  last_position: jax.Array
  row_segment: jax.Array
  done: jax.Array
  step: jax.Array
  row_keys: jax.Array


@flax.struct.dataclass
class Knobs:
  """Traced sampling values (changing them never recompiles).

  Attributes:
    temperature: float32 scalar (> 0 unless greedy).
    top_p: float32 scalar.
    stop_ids: int32 [MAX_STOP_TOKEN_IDS] padded with -1.
    seed: int32 scalar.
  """

  temperature: jax.Array
  top_p: jax.Array
  stop_ids: jax.Array
  seed: jax.Array


def _step_keys(row_keys: jax.Array, step: jax.Array) -> jax.Array:
  return jax.vmap(lambda k: jax.random.fold_in(jax.random.wrap_key_data(k), step))(row_keys)


def _is_stop(tokens: jax.Array, stop_ids: jax.Array) -> jax.Array:
  return jnp.any(tokens[:, None] == stop_ids[None, :], axis=-1)


def _vocab(logits: jax.Array, vocab_limit: int | None) -> jax.Array:
  """Drops ids >= vocab_limit (embedding rows the tokenizer has no token for)."""
  return logits if vocab_limit is None else logits[..., :vocab_limit]


def prefill(graphdef: nnx.GraphDef, model_states: tuple, batch: dict[str, jax.Array], knobs: Knobs, *,
            mode: SamplingMode, cache_len: int, max_new_tokens: int, cache_dtype,
            vocab_limit: int | None = None) -> SamplingState:
  """Runs the prompts through the model, fills the cache and samples the first token.

  Args:
    graphdef, model_states: the split model (`nnx.merge(graphdef, *model_states)`).
    batch: `tokens`, `positions`, `segment_ids` [B, W]; `prompt_lengths`,
      `prompt_index`, `sample_index` [B] (see batching.PromptBatch).
    knobs: traced sampling values.
    mode, cache_len, max_new_tokens, cache_dtype: static.
    vocab_limit: static; only ids below it are sampled (None = every embedding row).
  """
  model = nnx.merge(graphdef, *model_states)
  tokens = batch["tokens"]
  rows = tokens.shape[0]
  cache = init_cache(model.cfg, rows, cache_len, cache_dtype)
  hidden, cache = model.hidden_states(tokens, batch["positions"], batch["segment_ids"], cache=cache)
  logits = model.logits(hidden[:, -1])  # [B, V]: left padding puts every prompt's last token here
  base_key = jax.random.key(knobs.seed)
  row_keys = jax.vmap(lambda p, s: jax.random.fold_in(jax.random.fold_in(base_key, p), s))(
      batch["prompt_index"], batch["sample_index"])
  row_keys = jax.random.key_data(row_keys)
  active = batch["prompt_lengths"] > 0
  first = sample_tokens(_vocab(logits, vocab_limit), _step_keys(row_keys, jnp.int32(0)), mode, knobs.temperature,
                        knobs.top_p, live=active)
  first = jnp.where(active, first, 0)
  generated = jnp.zeros((rows, max_new_tokens), jnp.int32).at[:, 0].set(first)
  return SamplingState(cache=cache, tokens=generated, last_token=first,
                       last_position=batch["prompt_lengths"].astype(jnp.int32),
                       row_segment=active.astype(jnp.int32), done=(~active) | _is_stop(first, knobs.stop_ids),
                       step=jnp.ones((), jnp.int32), row_keys=row_keys)


def decode(graphdef: nnx.GraphDef, model_states: tuple, state: SamplingState, knobs: Knobs,
           step_limit: jax.Array, *, mode: SamplingMode, vocab_limit: int | None = None) -> SamplingState:
  """Generates tokens until every row is done or `state.step` reaches `step_limit`.

  `step_limit` is traced (at most N), so a host loop can run the decode in
  chunks (to check stop strings between them) with one compilation.
  """
  model = nnx.merge(graphdef, *model_states)

  def keep_going(s: SamplingState) -> jax.Array:
    return (s.step < step_limit) & ~jnp.all(s.done)

  def one_token(s: SamplingState) -> SamplingState:
    logits, cache = model(s.last_token[:, None], s.last_position[:, None], s.row_segment[:, None], cache=s.cache)
    token = sample_tokens(_vocab(logits[:, 0], vocab_limit), _step_keys(s.row_keys, s.step), mode,
                          knobs.temperature, knobs.top_p, live=~s.done)
    token = jnp.where(s.done, 0, token)
    tokens = jax.lax.dynamic_update_slice(s.tokens, token[:, None], (jnp.zeros((), jnp.int32), s.step))
    return s.replace(cache=cache, tokens=tokens, last_token=token, last_position=s.last_position + 1,
                     done=s.done | _is_stop(token, knobs.stop_ids), step=s.step + 1)

  return jax.lax.while_loop(keep_going, one_token, state)
