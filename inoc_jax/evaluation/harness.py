"""Evaluate a model on its setting's eval suite: for each eval-time prompt, sample, score, write results.json.

    metrics = evaluate_params(config, graphdef, params, workdir=run_dir)

is what the trainer calls at the end of training; `python -m inoc_jax.evaluate`
calls it for a checkpoint. For each eval prompt (config `eval.prompts`, else
the setting's defaults: neutral, PTST, compliance) it builds the suite with
`load_eval_suite(config, prompt, split)`, renders each conversation with the
chat template (generation prompt added), samples with the setting's paper
decoding (eval_config.sampling_params), scores with the setting's scorer and
writes `<out_dir>/results.json` (per-example records, aggregate metrics,
config, checkpoint id, judge) and prints a table.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import logging
import os
import time
from typing import Any, Callable, Sequence

import jax
import ml_collections
from flax import nnx
from jax.sharding import Mesh

from inoc_jax.data.conversation import Example
from inoc_jax.data.encoders import make_encoder
from inoc_jax.evaluation import eval_config, judges
from inoc_jax.evaluation.results_table import format_breakdown, format_table
from inoc_jax.evaluation.sandbox import Sandbox
from inoc_jax import settings
from inoc_jax.runtime import storage
from inoc_jax.sampling import Sampler, SamplingParams
from inoc_jax.sampling.journal import GenerationJournal, fingerprint
from inoc_jax.settings.loading import eval_prompt_names, load_eval_suite

log = logging.getLogger("inoc_jax")

SuiteLoader = Callable[[ml_collections.ConfigDict, str, str], list[Example]]


@dataclasses.dataclass
class ScoringContext:
  """What scorers may need beyond the responses (created lazily per setting)."""

  sandbox: Sandbox | None = None
  harassment_judge: Any = None
  persuasiveness_judge: Any = None
  include_test_imports: bool = False
  options: Any = None                 # the setting's own config block (config.data.<config_key>)
  judge_completer: Callable[[], Callable[[Sequence[str]], list[str]]] | None = None  # rubric judge, built on use
  judge_name: str | None = None       # set when judge_completer has built one


def default_suite_loader() -> SuiteLoader:
  """The data layer's eval suites (tests inject small suites by replacing this)."""
  return load_eval_suite


def default_prompt_names(config: ml_collections.ConfigDict) -> list[str]:
  return list(config.eval.prompts) if config.eval.prompts else eval_prompt_names(config)


def stop_token_ids(encoder) -> tuple[int, ...]:
  ids = getattr(encoder, "stop_token_ids", None)
  if ids is None:
    tok = encoder.tokenizer
    ids = tuple(i for i in (getattr(tok, "end_of_turn_id", None), getattr(tok, "eos_id", None)) if i is not None)
  return tuple(ids)


def token_ids(tokenizer, text: str) -> list[int]:
  """ids of `text` (tokenizers return either ids or (ids, offsets))."""
  encoded = tokenizer.encode(text)
  ids = encoded[0] if isinstance(encoded, tuple) else encoded
  return [int(i) for i in ids]


def detokenizer(tokenizer) -> Callable[[Sequence[int]], str]:
  """ids -> text without special tokens, as vLLM returns completions to the paper's scorers."""
  try:
    parameters = inspect.signature(tokenizer.decode).parameters
  except (TypeError, ValueError):
    parameters = {}
  if "skip_special_tokens" in parameters:
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
  return tokenizer.decode


def prompt_label(prompt: str) -> str:
  return prompt if prompt else "neutral"


def _render(examples: Sequence[Example], encoder, max_prompt_len: int) -> tuple[list[Example], list[list[int]], int]:
  kept, prompts, dropped = [], [], 0
  for example in examples:
    ids = encoder.encode(example.messages, add_generation_prompt=True).ids.tolist()
    if len(ids) > max_prompt_len:
      dropped += 1
      continue
    kept.append(example)
    prompts.append(ids)
  return kept, prompts, dropped


def _scoring_context(config: ml_collections.ConfigDict, sampler_factory) -> ScoringContext:
  setting = settings.get(config.setting)
  context = ScoringContext(include_test_imports=bool(config.eval.include_test_imports))
  if setting.needs_sandbox:
    context.sandbox = Sandbox(eval_config.sandbox_limits(config), workers=config.eval.sandbox_workers or None,
                              allow_unisolated=bool(config.eval.get("sandbox_allow_unisolated", False)))
  if setting.needs_judges:
    context.harassment_judge, context.persuasiveness_judge = judges.select_judges(
        eval_config.judge_settings(config), dict(os.environ), sampler_factory)
  if setting.config_key:
    context.options = config.data[setting.config_key]
  built = []

  def judge_completer():
    if not built:
      built.append(judges.select_completer(eval_config.judge_settings(config), dict(os.environ), sampler_factory))
      context.judge_name = built[0][1]
    return built[0][0]

  context.judge_completer = judge_completer
  return context


def _journal(workdir: str, checkpoint_id: str, step: int | None, prompt: str, prompt_ids: list[list[int]],
             params) -> GenerationJournal | None:
  """The journal of one eval prompt's generations in workdir (see sampling/journal.py), keyed by what they depend on."""
  key = fingerprint(checkpoint_id, step, prompt, prompt_ids, dataclasses.asdict(params))
  path = storage.join(workdir, f"generations-{key}.partial.jsonl")
  return GenerationJournal.open_for(path, key, writer=jax.process_index() == 0)


def evaluate_params(config: ml_collections.ConfigDict, graphdef: nnx.GraphDef, *model_states: Any, workdir: str,
                    mesh: Mesh | None = None, encoder=None, suite_loader: SuiteLoader | None = None,
                    prompts: Sequence[str] | None = None, checkpoint_id: str = "", step: int | None = None,
                    context: ScoringContext | None = None, print_table: bool = True,
                    sampler_cache: dict | None = None) -> dict[str, dict]:
  """Samples and scores the setting's eval suite under each eval prompt; writes workdir/results.json.

  Args:
    config: the run config (setting, seed, `eval.*`).
    graphdef, *model_states: the model (`nnx.merge(graphdef, *model_states)`), e.g. the train
      state's params and frozen weights.
    workdir: where results.json goes (created; local or a gs:// URL).
    mesh: device mesh for sampling (default: all devices on `data`).
    encoder: chat encoder (default: the run's, from config.data).
    suite_loader: (config, eval_prompt, split) -> examples (default: the data layer's load_eval_suite).
    prompts: eval prompts (default: eval.prompts, else the setting's defaults).
    checkpoint_id, step: recorded in the results.
    context: scorer needs (sandbox, judges); built from the config when None.
    print_table: print the metrics table (process 0).
    sampler_cache: compiled decode loops to reuse (Sampler's `compiled_cache`); a run that
      evaluates several times passes the same dict so the model compiles once.

  Returns:
    {eval prompt label: aggregate metrics}.
  """
  start = time.time()
  encoder = encoder if encoder is not None else make_encoder(config)
  suite_loader = suite_loader or default_suite_loader()
  prompts = list(prompts) if prompts is not None else default_prompt_names(config)
  scorer = settings.get(config.setting).scorer
  params = eval_config.sampling_params(config, stop_token_ids(encoder))
  sampler = Sampler(graphdef, *model_states, mesh=mesh, batch_size=config.eval.batch_size,
                    min_bucket=config.eval.min_bucket, vocab_size=encoder.tokenizer.vocab_size,
                    compiled_cache=sampler_cache)
  max_prompt_len = config.eval.max_prompt_len or max(1, sampler.model_cfg.max_seq_len - params.max_new_tokens)
  sampler.max_prompt_len = max_prompt_len
  context = context or _scoring_context(config, lambda: local_judge(config, mesh))
  results, summary, journals = {}, {}, []
  for prompt in prompts:
    label = prompt_label(prompt)
    examples = suite_loader(config, prompt, config.eval.split)
    if config.eval.max_examples:
      examples = examples[:config.eval.max_examples]
    examples, prompt_ids, dropped = _render(examples, encoder, max_prompt_len)
    if dropped:
      log.warning("eval %s: dropped %d prompts longer than %d tokens (eval.max_prompt_len)", label, dropped,
                  max_prompt_len)
    sample_start = time.time()
    journal = _journal(workdir, checkpoint_id, step, prompt, prompt_ids, params)
    journals.append(journal)
    generations = sampler.generate(prompt_ids, params, detokenize=detokenizer(encoder.tokenizer),
                                   description=f"eval {label}", journal=journal)
    if journal is not None and journal.reused:
      log.info("eval %s: reused %d generations kept by an interrupted evaluation", label, journal.reused)
    sample_seconds = time.time() - sample_start
    responses = [[g.text for g in samples] for samples in generations]
    report = scorer(examples, responses, context)
    order = [(i, s) for i, samples in enumerate(generations) for s in range(len(samples))]
    for record, (example_index, sample_index) in zip(report.records, order, strict=True):
      assert record["example_id"] == examples[example_index].example_id, "scorers keep (example, sample) order"
      generation = generations[example_index][sample_index]
      record["prompt"] = examples[example_index].messages[-1].content
      record["finish_reason"] = generation.finish_reason
      record["num_tokens"] = len(generation.tokens)
    new_tokens = sum(len(g.tokens) for samples in generations for g in samples)
    results[label] = {"eval_prompt": prompt, "metrics": report.metrics, "judge": report.judge,
                      "num_examples": len(examples), "dropped_too_long": dropped,
                      "sampling_seconds": sample_seconds, "new_tokens": new_tokens, "records": report.records}
    summary[label] = report.metrics
  document = {"setting": config.setting, "checkpoint": checkpoint_id, "step": step,
              "created": datetime.datetime.now().isoformat(timespec="seconds"),
              "decoding": dataclasses.asdict(params), "split": config.eval.split,
              "wall_seconds": time.time() - start, "config": json.loads(config.to_json_best_effort()),
              "results": results}
  if jax.process_index() == 0:
    storage.makedirs(workdir)
    storage.write_text(storage.join(workdir, "results.json"), storage.dumps_json(document, indent=1))
    for journal in journals:
      if journal is not None:
        journal.remove()
    if print_table:
      at_step = f" @ step {step}" if step is not None else ""
      headline = settings.get(config.setting).metrics.headline
      print(format_table(config.setting, summary, headline,
                         title=f"{config.setting} - {checkpoint_id or 'model'}{at_step}"))
      breakdown = format_breakdown(summary, headline)
      if breakdown:
        print(breakdown)
  return summary


ANSWER_PREFIX = "GRADE:"


def local_judge(config: ml_collections.ConfigDict, mesh: Mesh | None) -> judges.LocalModelGrader:
  """A LocalModelGrader sampling greedily from eval.judge.local_model through our Sampler.

  The judge's reply is started with "GRADE:" (appended after the chat template's
  generation prompt), so even a small instruct model answers in the format.
  """
  from inoc_jax.evaluation.model_loading import load_model  # pylint: disable=g-import-not-at-top
  spec = config.eval.judge.local_model
  judge_config = ml_collections.ConfigDict(config.to_dict())
  judge_config.model.checkpoint = spec
  judge_config.data.tokenizer = spec
  loaded = load_model(judge_config, spec, mesh)
  encoder = make_encoder(judge_config)
  sampler = Sampler(loaded.graphdef, *loaded.states, mesh=mesh, batch_size=config.eval.batch_size,
                    min_bucket=config.eval.min_bucket, vocab_size=encoder.tokenizer.vocab_size)
  params = SamplingParams(max_new_tokens=16, stop_token_ids=stop_token_ids(encoder))
  from inoc_jax.data.conversation import Message  # pylint: disable=g-import-not-at-top

  prefix_ids = token_ids(encoder.tokenizer, ANSWER_PREFIX)

  def generate(texts: Sequence[str]) -> list[str]:
    ids = [encoder.encode((Message.plain("user", t),), add_generation_prompt=True).ids.tolist() + prefix_ids
           for t in texts]
    outputs = sampler.generate(ids, params, detokenize=detokenizer(encoder.tokenizer), description="judge")
    return [ANSWER_PREFIX + samples[0].text for samples in outputs]

  return judges.LocalModelGrader(generate, loaded.name)
