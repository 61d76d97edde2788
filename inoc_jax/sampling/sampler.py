"""`Sampler`: batched generation over a whole prompt set, on the device mesh.

    sampler = Sampler(graphdef, params, mesh=mesh, batch_size=32)
    outputs = sampler.generate(prompt_ids, SamplingParams(temperature=0.7, top_p=0.9,
                                                           stop_token_ids=(2,)), detokenize=tok.decode)
    outputs[prompt][sample].text

The host groups (prompt, sample) requests into fixed-shape batches by prompt
bucket (batching.py), and for each batch calls a jitted prefill (compiled once
per bucket, new-token budget and sampling mode) and a jitted `lax.while_loop`
decode (decode.py) that every bucket of a call shares: their caches are all
sized to the widest bucket plus the budget. Rows are data-parallel over the mesh's
(`data`, `fsdp`) axes; weights and KV heads follow the parameter rule table
(heads over `tensor`). Stop strings need the text, so with stop strings the
decode loop runs in chunks and the host stops rows between chunks.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm import tqdm

from inoc_jax.errors import ConfigError
from inoc_jax.runtime.console import progress_interval
from inoc_jax.sampling import batching, decode as decode_lib, stop
from inoc_jax.sampling.journal import GenerationJournal
from inoc_jax.sampling.params import SamplingMode, SamplingParams, padded_stop_ids
from inoc_jax.sharding import rules
from inoc_jax.sharding.mesh import BATCH_AXES, data_parallel_size, make_mesh, replicated

log = logging.getLogger("inoc_jax")

BATCH_FIELDS = ("tokens", "positions", "segment_ids", "prompt_lengths", "prompt_index", "sample_index")


@dataclasses.dataclass(frozen=True)
class Generation:
  """One sample for one prompt.

  Attributes:
    tokens: generated ids, without the stop token.
    text: decoded text cut before any stop string (None without a detokenizer).
    finish_reason: 'stop_token', 'stop_string' or 'length'.
    prompt_index, sample_index: which request this answers.
  """

  tokens: tuple[int, ...]
  text: str | None
  finish_reason: str
  prompt_index: int
  sample_index: int


def _state_spec(shape: Sequence[int]) -> P:
  if len(shape) == 0:
    return P()
  if len(shape) == 4:  # KV cache [B, slots, kv_heads, head_dim]
    return P(BATCH_AXES, None, "tensor", None)
  return P(BATCH_AXES)


def _shard_like(tree: Any, mesh: Mesh) -> Any:
  return jax.tree.map(lambda x: NamedSharding(mesh, rules.fit_spec(_state_spec(x.shape), x.shape, mesh)), tree)


def _put(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
  if jax.process_count() == 1:
    return jax.device_put(array, sharding)
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def _fetch(array: jax.Array) -> np.ndarray:
  if array.is_fully_addressable:
    return np.asarray(jax.device_get(array))
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


class Sampler:
  """Generates from one model; compiled prefills are cached per (bucket, budget, mode, cache length), decode
  loops per (rows, budget, mode, cache length): one `generate` call sizes every bucket's cache to its widest.

  Args:
    graphdef: the model's nnx GraphDef (a `Transformer`, LoRA or not).
    *model_states: the states `nnx.merge(graphdef, *model_states)` needs (e.g.
      trainable params and frozen params); placed on the mesh by the rule table.
    mesh: device mesh (default: all devices on `data`).
    batch_size: rows per compiled batch (rounded up to the data-parallel size); a
      bucket with fewer requests uses the next power of two instead.
    min_bucket: narrowest prompt bucket; buckets double from it.
    max_prompt_len: longest prompt accepted (default: the model's max_seq_len).
    decode_chunk: decode steps between host checks when stop strings are used.
    cache_dtype: KV-cache dtype (default: the model's compute dtype).
    vocab_size: sample only ids below this (the tokenizer's vocabulary when the
      embedding table has extra rows); default: every row.
    progress: show a progress bar.
    compiled_cache: a dict to keep the compiled loops in; pass the same dict to several
      Samplers (e.g. one per evaluation of a training run) to compile once. Entries are
      keyed by the model's graphdef, mesh and decoding shapes, so differing models never
      share one.
  """

  def __init__(self, graphdef: nnx.GraphDef, *model_states: Any, mesh: Mesh | None = None, batch_size: int = 8,
               min_bucket: int = 16, max_prompt_len: int | None = None, decode_chunk: int = 32,
               cache_dtype=None, vocab_size: int | None = None, progress: bool = True,
               compiled_cache: dict | None = None):
    if not model_states:
      raise ConfigError("Sampler needs the model's state: Sampler(graphdef, params) or Sampler.from_model(model).")
    self.mesh = mesh if mesh is not None else make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    self._parallel = data_parallel_size(self.mesh)
    self.batch_size = -(-max(1, batch_size) // self._parallel) * self._parallel
    self.graphdef = graphdef
    abstract = nnx.merge(graphdef, *jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), model_states))
    self.model_cfg = abstract.cfg
    self.cache_dtype = cache_dtype or abstract.dtype
    self.max_prompt_len = max_prompt_len or self.model_cfg.max_seq_len
    self.widths = batching.bucket_widths(self.max_prompt_len, min_bucket)
    self.decode_chunk = max(1, decode_chunk)
    self.vocab_limit = vocab_size if vocab_size and vocab_size < self.model_cfg.vocab_size else None
    self.progress = progress
    self._model_shardings = tuple(rules.tree_shardings(s, self.mesh) for s in model_states)
    self.model_states = tuple(jax.device_put(s, sh) for s, sh in zip(model_states, self._model_shardings))
    self._compiled: dict[tuple, tuple[Callable, Callable]] = {} if compiled_cache is None else compiled_cache
    self.trace_counts: dict[str, dict[tuple, int]] = {"prefill": {}, "decode": {}}

  @classmethod
  def from_model(cls, model: nnx.Module, **kwargs) -> "Sampler":
    graphdef, state = nnx.split(model)
    return cls(graphdef, state, **kwargs)

  # -- compilation ---------------------------------------------------------
  def _batch_abstract(self, rows: int, width: int) -> dict[str, jax.ShapeDtypeStruct]:
    return {f: jax.ShapeDtypeStruct((rows, width) if f in ("tokens", "positions", "segment_ids") else (rows,),
                                    jnp.int32) for f in BATCH_FIELDS}

  def _functions(self, width: int, rows: int, max_new_tokens: int, mode: SamplingMode,
                 cache_len: int) -> tuple[Callable, Callable]:
    """(prefill, decode) jitted for this batch shape.

    Prefill is compiled per prompt bucket; decode only sees the cache, so every
    bucket of one `generate` call (all sized to its widest bucket) shares one
    decode program: keyed by (rows, cache_len, budget, mode), not the width.
    """
    key = (width, rows, max_new_tokens, mode, cache_len)
    decode_key = (rows, cache_len, max_new_tokens, mode)
    model_key = (self.graphdef, self.mesh, str(self.cache_dtype), self.vocab_limit)
    if model_key + key in self._compiled:
      return self._compiled[model_key + key]
    counts = self.trace_counts

    def prefill(model_states, batch, knobs):
      counts["prefill"][key] = counts["prefill"].get(key, 0) + 1
      return decode_lib.prefill(self.graphdef, model_states, batch, knobs, mode=mode, cache_len=cache_len,
                                max_new_tokens=max_new_tokens, cache_dtype=self.cache_dtype,
                                vocab_limit=self.vocab_limit)

    def decode(model_states, state, knobs, step_limit):
      counts["decode"][decode_key] = counts["decode"].get(decode_key, 0) + 1
      return decode_lib.decode(self.graphdef, model_states, state, knobs, step_limit, mode=mode,
                               vocab_limit=self.vocab_limit)

    batch_abstract = self._batch_abstract(rows, width)
    batch_shardings = _shard_like(batch_abstract, self.mesh)
    knob_shardings = replicated(self.mesh)
    state_abstract = jax.eval_shape(functools.partial(
        decode_lib.prefill, self.graphdef, mode=mode, cache_len=cache_len, max_new_tokens=max_new_tokens,
        cache_dtype=self.cache_dtype, vocab_limit=self.vocab_limit), self.model_states, batch_abstract,
        self._knobs(SamplingParams()))
    state_shardings = _shard_like(state_abstract, self.mesh)
    prefill_jit = jax.jit(prefill, in_shardings=(self._model_shardings, batch_shardings, knob_shardings),
                          out_shardings=state_shardings)
    decode_jit = self._compiled.get(model_key + ("decode",) + decode_key) or jax.jit(
        decode, in_shardings=(self._model_shardings, state_shardings, knob_shardings, knob_shardings),
        out_shardings=state_shardings, donate_argnums=(1,))
    self._compiled[model_key + ("decode",) + decode_key] = decode_jit
    self._compiled[model_key + key] = (prefill_jit, decode_jit)
    return prefill_jit, decode_jit

  def _knobs(self, params: SamplingParams) -> decode_lib.Knobs:
    return decode_lib.Knobs(temperature=jnp.float32(params.temperature if params.temperature > 0 else 1.0),
                            top_p=jnp.float32(params.top_p),
                            stop_ids=jnp.asarray(padded_stop_ids(params.stop_token_ids), jnp.int32),
                            seed=jnp.int32(params.seed))

  # -- generation ----------------------------------------------------------
  def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams, *,
               detokenize: Callable[[Sequence[int]], str] | None = None,
               description: str = "sample", journal: GenerationJournal | None = None) -> list[list[Generation]]:
    """Samples `params.num_samples` continuations of every prompt.

    Args:
      prompts: token ids per prompt (already chat-formatted).
      params: decoding rule and budget.
      detokenize: ids -> text; required for stop strings, else only fills `text`.
      description: progress-bar label.
      journal: where finished batches are kept; a batch it already holds is not generated again.

    Returns:
      outputs[prompt_index][sample_index].
    """
    if params.stop_strings and detokenize is None:
      raise ConfigError("Stop strings need a detokenizer: pass detokenize=tokenizer.decode to Sampler.generate.")
    plan = batching.plan_batches(prompts, params.num_samples, self.batch_size, self.widths, self._parallel)
    results: list[list[Generation | None]] = [[None] * params.num_samples for _ in prompts]
    knobs = self._knobs(params)
    total = len(prompts) * params.num_samples
    bar = tqdm(total=total, desc=description, unit="sample", disable=not self.progress or jax.process_index() != 0,
               dynamic_ncols=True, leave=False, mininterval=progress_interval())
    cache_len = max((width for width, _, _ in plan), default=0) + params.max_new_tokens
    for width, rows, requests in plan:
      kept = journal.lookup(requests) if journal is not None else None
      if kept is not None:
        generations = [Generation(**dict(g, tokens=tuple(g["tokens"]))) for g in kept]
      else:
        batch = batching.left_padded_batch(prompts, requests, width, rows)
        generations = self._generate_batch(batch, params, knobs, detokenize, cache_len)
        if journal is not None:
          journal.record(dataclasses.asdict(g) for g in generations)
      for generation in generations:
        results[generation.prompt_index][generation.sample_index] = generation
      bar.update(len(requests))
    bar.close()
    return results  # type: ignore[return-value]

  def _generate_batch(self, batch: batching.PromptBatch, params: SamplingParams, knobs: decode_lib.Knobs,
                      detokenize, cache_len: int) -> list[Generation]:
    rows = batch.tokens.shape[0]
    prefill_fn, decode_fn = self._functions(batch.width, rows, params.max_new_tokens, params.mode(), cache_len)
    shardings = _shard_like(self._batch_abstract(rows, batch.width), self.mesh)
    device_batch = {f: _put(getattr(batch, f), shardings[f]) for f in BATCH_FIELDS}
    state = prefill_fn(self.model_states, device_batch, knobs)
    valid_steps = np.full((rows,), params.max_new_tokens)
    if not params.stop_strings:
      state = decode_fn(self.model_states, state, knobs, jnp.int32(params.max_new_tokens))
    else:
      while True:
        limit = min(int(state.step) + self.decode_chunk, params.max_new_tokens)
        state = decode_fn(self.model_states, state, knobs, jnp.int32(limit))
        done, tokens, step = _fetch(state.done), _fetch(state.tokens), int(state.step)
        newly_stopped = np.zeros_like(done)
        for r in np.flatnonzero(~done):
          text = detokenize(stop.cut_at_stop_token(tokens[r, :step].tolist(), params.stop_token_ids)[0])
          newly_stopped[r] = stop.first_stop_string(text, params.stop_strings) is not None
        valid_steps[newly_stopped] = step
        if step >= params.max_new_tokens or np.all(done | newly_stopped):
          break
        if newly_stopped.any():
          state = state.replace(done=_put(done | newly_stopped, state.done.sharding))
    tokens = _fetch(state.tokens)
    return [self._finish(tokens[r, :valid_steps[r]], batch, r, params, detokenize) for r in range(batch.num_rows)]

  @staticmethod
  def _finish(row_tokens: np.ndarray, batch: batching.PromptBatch, r: int, params: SamplingParams,
              detokenize) -> Generation:
    kept, hit_stop_token = stop.cut_at_stop_token(row_tokens.tolist(), params.stop_token_ids)
    reason = "stop_token" if hit_stop_token else "length"
    text = None
    if detokenize is not None:
      text, hit_string = stop.cut_at_stop_string(detokenize(kept), params.stop_strings)
      if hit_string:
        reason = "stop_string"
    return Generation(tuple(kept), text, reason, int(batch.prompt_index[r]), int(batch.sample_index[r]))
