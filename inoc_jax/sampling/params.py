"""What to generate: decoding knobs shared by the sampler, the evaluator and the configs.

The values a compiled decode loop depends on structurally (greedy or not, top-k
width, whether top-p is on, the number of new tokens) are split from the ones
it only reads (temperature, top-p value, stop ids, seed), so changing a
temperature never recompiles.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from inoc_jax.errors import ConfigError

# Stop ids travel to the device as a fixed-width array so their count never retraces.
MAX_STOP_TOKEN_IDS = 16


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  """How to decode one request.

  Attributes:
    max_new_tokens: tokens generated per sample at most (the stop token included).
    temperature: 0 means greedy (argmax); otherwise logits are divided by it.
    top_k: keep the k most likely tokens (0 = off).
    top_p: keep the smallest set of most likely tokens whose mass reaches p (1.0 = off).
    num_samples: independent samples per prompt.
    stop_token_ids: generation of a row ends after any of these ids.
    stop_strings: generation ends when the decoded text contains one; the text is
      cut before it.
    seed: with the prompt's index and the sample's index, fixes every random draw,
      so results do not depend on batch size or on which prompts share a batch.
  """

  max_new_tokens: int = 64
  temperature: float = 0.0
  top_k: int = 0
  top_p: float = 1.0
  num_samples: int = 1
  stop_token_ids: tuple[int, ...] = ()
  stop_strings: tuple[str, ...] = ()
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "stop_token_ids", tuple(int(i) for i in self.stop_token_ids))
    object.__setattr__(self, "stop_strings", tuple(s for s in self.stop_strings if s))
    problems = []
    if self.max_new_tokens < 1:
      problems.append(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
    if self.temperature < 0:
      problems.append(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
    if self.top_k < 0:
      problems.append(f"top_k must be >= 0 (0 = off), got {self.top_k}")
    if not 0.0 < self.top_p <= 1.0:
      problems.append(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
    if self.num_samples < 1:
      problems.append(f"num_samples must be at least 1, got {self.num_samples}")
    if len(self.stop_token_ids) > MAX_STOP_TOKEN_IDS:
      problems.append(f"at most {MAX_STOP_TOKEN_IDS} stop token ids are supported, got {len(self.stop_token_ids)}")
    if any(i < 0 for i in self.stop_token_ids):
      problems.append(f"stop token ids must be non-negative, got {self.stop_token_ids}")
    if problems:
      raise ConfigError("Invalid sampling parameters: " + "; ".join(problems) + ".")

  @property
  def greedy(self) -> bool:
    return self.temperature == 0.0

  def mode(self) -> "SamplingMode":
    return SamplingMode(greedy=self.greedy, top_k=0 if self.greedy else self.top_k,
                        use_top_p=(not self.greedy) and self.top_p < 1.0)

  def replace(self, **changes) -> "SamplingParams":
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class SamplingMode:
  """The static part of the sampling rule (hashable; one compiled loop per value).

  Attributes:
    greedy: argmax instead of a draw.
    top_k: width of the candidate set (0 = the whole vocabulary).
    use_top_p: apply nucleus filtering (its threshold is a traced value).
  """

  greedy: bool
  top_k: int
  use_top_p: bool


def padded_stop_ids(stop_token_ids: Sequence[int]) -> list[int]:
  """Stop ids padded with -1 (never a token) to MAX_STOP_TOKEN_IDS entries."""
  ids = list(stop_token_ids)
  return ids + [-1] * (MAX_STOP_TOKEN_IDS - len(ids))
