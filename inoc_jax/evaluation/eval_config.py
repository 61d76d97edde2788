"""The `eval.*` config block, resolved against the setting's paper defaults, and its validation.

Decoding fields left at their "paper" value (-1 / 0) take the setting's value
from the setting's `decoding` (inoc_jax/settings/) (e.g. GCD: T=0.7, top-p 0.9, 400 tokens).
"""

from __future__ import annotations

import dataclasses

import ml_collections

from inoc_jax import settings
from inoc_jax.evaluation.judges import JudgeSettings
from inoc_jax.evaluation.sandbox import SandboxLimits
from inoc_jax.sampling.params import SamplingParams

JUDGE_FIELDS = tuple(f.name for f in dataclasses.fields(JudgeSettings))


def add_eval_defaults(c: ml_collections.ConfigDict) -> None:
  """Adds the `eval` block to a base config (called by config_defaults.base_config)."""
  if "eval" not in c:
    c.eval = ml_collections.ConfigDict()
  e = c.eval
  defaults = dict(
      prompts=(),            # eval-time prompts (registry names / texts / '@file'); () = the setting's defaults
      split="eval",          # which eval split of the setting
      at_end=False,          # train: evaluate the final params (needs the setting's eval suite)
      initial=False,         # train: also evaluate the initial params before step 1 (-> eval/initial/)
      every_steps=0,         # train: also evaluate every N steps (0 = never)
      num_samples=0,         # samples per prompt (0 = the paper's, 1 everywhere)
      temperature=-1.0,      # -1 = the paper's for the setting; 0 = greedy
      top_p=-1.0,            # -1 = the paper's; 1 = off
      top_k=-1,              # -1 = the paper's (off); 0 = off
      max_new_tokens=0,      # 0 = the paper's for the setting
      stop_strings=(),       # extra stop strings (the chat template's end-of-turn ids always stop)
      seed=-1,               # -1 = config.seed
      batch_size=32,         # rows per compiled sampler batch
      min_bucket=32,         # narrowest prompt bucket (buckets double from it)
      max_prompt_len=0,      # 0 = model max_seq_len - max_new_tokens; longer prompts are dropped and counted
      max_examples=0,        # evaluate only the first N examples of the suite (0 = all)
      sandbox_workers=0,     # parallel programs in the code sandbox (0 = CPU count)
      sandbox_allow_unisolated=False,  # without root or user namespaces, run model code unisolated anyway
      sandbox_timeout=30.0,  # seconds per program (the paper's 30 s)
      include_test_imports=False,  # MBPP: prepend test_imports (the paper does not)
  )
  for key, value in defaults.items():
    if key not in e:
      e[key] = value
  if "judge" not in e:
    e.judge = ml_collections.ConfigDict({f.name: f.default for f in dataclasses.fields(JudgeSettings)})


def sampling_params(config: ml_collections.ConfigDict, stop_token_ids=()) -> SamplingParams:
  """The decoding of `config.setting` with the eval block's overrides applied."""
  paper = dataclasses.asdict(settings.get(config.setting).decoding)
  e = config.eval
  return SamplingParams(
      max_new_tokens=e.max_new_tokens or paper["max_new_tokens"],
      temperature=paper["temperature"] if e.temperature < 0 else e.temperature,
      top_p=paper["top_p"] if e.top_p < 0 else e.top_p,
      top_k=paper["top_k"] if e.top_k < 0 else e.top_k,
      num_samples=e.num_samples or paper["num_samples"],
      stop_token_ids=tuple(stop_token_ids), stop_strings=tuple(e.stop_strings),
      seed=config.seed if e.seed < 0 else e.seed)


def judge_settings(config: ml_collections.ConfigDict) -> JudgeSettings:
  return JudgeSettings(**{k: config.eval.judge[k] for k in JUDGE_FIELDS if k in config.eval.judge})


def sandbox_limits(config: ml_collections.ConfigDict) -> SandboxLimits:
  timeout = float(config.eval.sandbox_timeout)
  return SandboxLimits(wall_seconds=timeout, cpu_seconds=max(1, int(timeout)))


def problems(config: ml_collections.ConfigDict) -> list[str]:
  """Every problem of the eval block, as phrases for config_lib.validate."""
  if "eval" not in config:
    return []
  e, found = config.eval, []
  checks = [
      (e.num_samples >= 0, f"eval.num_samples must be >= 0, got {e.num_samples}"),
      (e.temperature == -1.0 or e.temperature >= 0,
       f"eval.temperature must be >= 0 or -1 (paper), got {e.temperature}"),
      (e.top_p == -1.0 or 0 < e.top_p <= 1, f"eval.top_p must be in (0, 1] or -1 (paper), got {e.top_p}"),
      (e.top_k >= -1, f"eval.top_k must be >= 0 or -1 (paper), got {e.top_k}"),
      (e.max_new_tokens >= 0, f"eval.max_new_tokens must be >= 0 (0 = paper), got {e.max_new_tokens}"),
      (e.batch_size > 0, f"eval.batch_size must be positive, got {e.batch_size}"),
      (e.min_bucket > 0, f"eval.min_bucket must be positive, got {e.min_bucket}"),
      (e.max_examples >= 0, f"eval.max_examples must be >= 0, got {e.max_examples}"),
      (e.every_steps >= 0, f"eval.every_steps must be >= 0, got {e.every_steps}"),
      (e.sandbox_timeout > 0, f"eval.sandbox_timeout must be positive, got {e.sandbox_timeout}"),
  ]
  found += [message for ok, message in checks if not ok]
  for name, allowed in (("harassment", ("auto", "openai", "local", "none")),
                        ("persuasiveness", ("auto", "anthropic", "openai", "local", "none"))):
    if e.judge[name] not in allowed:
      found.append(f"eval.judge.{name} must be one of {', '.join(allowed)}, got {e.judge[name]!r}")
  return found
