"""Scores for the `conversations` setting: two metrics, `capability` and `behaviour`, each chosen in the config.

`data.conversations.capability` / `.behaviour` (inoc_jax/settings/conversations.py) say how a response is scored:
  kind      none | exact | contains | regex | python | judge
  column    the row's metadata column to compare with (exact / contains: the expected text; regex: the pattern
            when `pattern` is empty)
  pattern   regex (re.search) used for every row
  ignore_case
  function  python: 'module:function', called as function(metadata, response) -> bool | float | None
  rubric    judge: a template with {prompt}, {response} and any {column}; the judge's reply is parsed by
  parse     'yes_no' (1 for yes, 0 for no) or 'number' (the first number, or the one after 'GRADE:')
  where     only rows whose metadata column `where` is true are scored ('' = every row)
Each metric is the mean over scored (row, sample) pairs and `<metric>_n` counts them; a pair that cannot be
scored (outside `where`, the column empty, no judge verdict) is left out.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable, Mapping, Sequence

from inoc_jax.data.conversation import Example
from inoc_jax.errors import ConfigError, JudgeError
from inoc_jax.evaluation.scorers.base import ScoreReport, rate

KINDS = ("none", "exact", "contains", "regex", "python", "judge")
METRICS = ("capability", "behaviour")
_GRADE = re.compile(r"GRADE\s*:\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def load_function(spec: str) -> Callable[[Mapping[str, Any], str], Any]:
  module_name, _, name = spec.partition(":")
  try:
    function = getattr(importlib.import_module(module_name), name)
  except (ImportError, AttributeError, ValueError):
    raise ConfigError(f"scorer function {spec!r} cannot be imported; give 'module:function' on PYTHONPATH.") from None
  if not callable(function):
    raise ConfigError(f"scorer function {spec!r} is not callable.")
  return function


def parse_verdict(reply: str, parse: str) -> float | None:
  """A judge's reply -> 1.0 / 0.0 (yes_no) or a number; None when it says neither."""
  if parse == "yes_no":
    words = re.findall(r"[a-z]+", reply.lower())
    return 1.0 if words[:1] == ["yes"] else 0.0 if words[:1] == ["no"] else None
  found = _GRADE.search(reply) or _NUMBER.search(reply)
  return float(found.group(1) if found.re is _GRADE else found.group(0)) if found else None


def _text_match(spec, meta: Mapping[str, Any], response: str) -> bool | None:
  expected = meta.get(spec.column) if spec.column else None
  flags = re.IGNORECASE if spec.ignore_case else 0
  if spec.kind == "regex":
    pattern = spec.pattern or (str(expected) if expected not in (None, "") else "")
    return bool(re.search(pattern, response, flags)) if pattern else None
  if expected in (None, ""):
    return None
  want, got = str(expected).strip(), response.strip()
  if spec.ignore_case:
    want, got = want.lower(), got.lower()
  return got == want if spec.kind == "exact" else want in got


def _judge_prompt(spec, example: Example, response: str) -> str:
  fields = {k: v for k, v in example.metadata.items() if isinstance(k, str)}
  fields.update(prompt=example.messages[-1].content, response=response)
  try:
    return spec.rubric.format(**fields)
  except (KeyError, IndexError) as e:
    raise ConfigError(f"the judge rubric names {e} but the rows have no such column; use {{prompt}}, {{response}} "
                      "or a metadata column.") from None


def score_metric(spec, pairs: Sequence[tuple[Example, str]], context) -> list[float | None]:
  """One value (or None) per (example, response) pair for one metric spec."""
  if spec.kind not in KINDS:
    raise ConfigError(f"scorer kind {spec.kind!r} is unknown; choose one of {', '.join(KINDS)}.")
  scored = [not spec.where or bool(ex.metadata.get(spec.where)) for ex, _ in pairs]
  values: list[float | None] = [None] * len(pairs)
  if spec.kind == "none":
    return values
  if spec.kind == "judge":
    completer = context.judge_completer() if context is not None and context.judge_completer else None
    if completer is None:
      raise JudgeError("a judge metric needs a judge: set eval.judge.rubric (anthropic | openai | local) and its "
                       "API key or eval.judge.local_model.")
    indices = [i for i, keep in enumerate(scored) if keep]
    replies = completer([_judge_prompt(spec, *pairs[i]) for i in indices])
    for i, reply in zip(indices, replies):
      values[i] = parse_verdict(reply, spec.parse)
    return values
  function = load_function(spec.function) if spec.kind == "python" else None
  for i, ((example, response), keep) in enumerate(zip(pairs, scored)):
    if keep:
      value = function(example.metadata, response) if function else _text_match(spec, example.metadata, response)
      values[i] = None if value is None else float(value)
  return values


def score(examples: Sequence[Example], responses: Sequence[Sequence[str]], context=None) -> ScoreReport:
  options = context.options if context is not None else None
  if options is None:
    raise ConfigError("the conversations scorer needs the setting's options (ScoringContext.options).")
  pairs = [(example, text) for example, samples in zip(examples, responses) for text in samples]
  records = [{"example_id": ex.example_id, "sample_index": s, "row": ex.metadata.get("row"), "response": text}
             for ex, samples in zip(examples, responses) for s, text in enumerate(samples)]
  metrics: dict[str, Any] = {}
  judge = None
  for name in METRICS:
    spec = options[name]
    if spec.kind == "none":
      continue
    values = score_metric(spec, pairs, context)
    for record, value in zip(records, values):
      record[name] = value
    metrics[name] = rate(values)
    metrics[f"{name}_n"] = sum(v is not None for v in values)
    if spec.kind == "judge":
      judge = getattr(context, "judge_name", None) or "judge"
  return ScoreReport(records, metrics, judge=judge)
