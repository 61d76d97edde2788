"""What a run has done so far, carried in every checkpoint, and what a resumed run may not change.

A run that is killed and resumed is one run: its summary (first loss, tokens/s)
covers all of its segments, so the counters travel in the checkpoint's `meta`
(`RunProgress`). Resuming with another batch size, sequence length or data set
would silently continue a different experiment from the same optimizer state,
so `resume_changes` lists such differences and the trainer refuses them unless
`checkpoint.allow_resume_changes` is set (then they are recorded in the run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any, Iterable, Mapping

from inoc_jax.errors import ConfigError

# Config fields that decide which tokens a step sees; changing one mid-run changes the experiment.
RESUME_INVARIANTS = ("setting", "seed", "data.global_batch_size", "data.seq_len", "data.packing",
                     "data.num_train_examples", "data.train_prompt", "data.train_prompts", "data.source_dir",
                     "data.tokenizer", "data.chat_template", "loss.train_on")


def finite_or_none(value: Any) -> float | None:
  """JSON has no NaN or Infinity; an unknown or non-finite number is written as null."""
  if value is None:
    return None
  value = float(value)
  return value if math.isfinite(value) else None


@dataclasses.dataclass
class RunProgress:
  """Counters over every segment of a run (a segment ends at a crash, signal or the end).

  Attributes:
    first_loss: the training loss of optimizer step 1 (None before it).
    last_loss: the loss of the newest step.
    tokens: non-padding tokens trained on, excluding each segment's first (compiling) step.
    train_seconds: wall time of the timed steps, summed over segments.
    data_fingerprint: hash of the training set's token ids (see `data_fingerprint`).
  """

  first_loss: float | None = None
  last_loss: float | None = None
  tokens: int = 0
  train_seconds: float = 0.0
  data_fingerprint: str = ""

  def to_json(self) -> dict:
    return {"first_loss": finite_or_none(self.first_loss), "last_loss": finite_or_none(self.last_loss),
            "tokens": int(self.tokens), "train_seconds": float(self.train_seconds),
            "data_fingerprint": self.data_fingerprint}

  @classmethod
  def from_json(cls, data: Mapping[str, Any] | None) -> "RunProgress":
    data = data or {}
    return cls(first_loss=data.get("first_loss"), last_loss=data.get("last_loss"), tokens=int(data.get("tokens", 0)),
               train_seconds=float(data.get("train_seconds", 0.0)), data_fingerprint=data.get("data_fingerprint", ""))

  def tokens_per_second(self) -> float:
    return self.tokens / self.train_seconds if self.train_seconds > 0 else 0.0


def data_fingerprint(examples: Iterable[Any]) -> str:
  """sha256 over each example's id and token ids: equal iff the tokenized training set is the same."""
  digest = hashlib.sha256()
  for example in examples:
    digest.update(example.example_id.encode("utf-8") + b"\0")
    digest.update(example.ids.astype("<i4").tobytes())
  return digest.hexdigest()[:16]


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
  value: Any = config
  for part in dotted.split("."):
    if not isinstance(value, Mapping) or part not in value:
      return None
    value = value[part]
  return list(value) if isinstance(value, (list, tuple)) else value


def resume_changes(saved_config: Mapping[str, Any], config: Mapping[str, Any], saved_fingerprint: str,
                   fingerprint: str) -> list[str]:
  """Human-readable differences between the checkpointed run and this one that change its data."""
  changes = [f"{field} {_lookup(saved_config, field)!r} -> {_lookup(config, field)!r}"
             for field in RESUME_INVARIANTS if _lookup(saved_config, field) != _lookup(config, field)]
  if saved_fingerprint and fingerprint and saved_fingerprint != fingerprint and not changes:
    changes.append("the tokenized training set differs (source files or tokenizer changed)")
  return changes


def check_resume(changes: list[str], step: int, allow: bool) -> None:
  """Raises a one-sentence ConfigError for a resume that would change the experiment, unless allowed."""
  if changes and not allow:
    raise ConfigError(
        f"This workdir's checkpoint (step {step}) was trained with other data settings ({'; '.join(changes)}); "
        "resume with the original settings, use a new --workdir, or pass "
        "--config.checkpoint.allow_resume_changes=True to continue anyway (recorded in resumes.jsonl).")
