"""Instructions by name: the prompt table each setting declares, and the helpers that read prompt values.

Kinds: 'neutral' (the normal prompt), 'inoculation' (requests the undesired
behaviour at train time), 'unrelated_control' / 'wrong_concept_control' /
'placebo_control' (train-time ablations), 'ptst' (a safety instruction added at
test time, Lyu et al. 2024), 'compliance' (asks for the undesired behaviour at
test time).

Each setting (inoc_jax/settings/<name>.py) declares a `PromptTable` of its
instructions, verbatim from the papers. Config values name a prompt
(`'ip_behave_correct'`, or the paper's label `'IP Behave Correct'`) or give
literal text; `table.resolve(value)` returns the text ('' is Neutral). Entries of
`data.train_prompts` / `eval.prompts` that start with '@' name a text file: one
prompt (name or text) per line, blank lines and '#' comments skipped, backslash
escapes such as \\n decoded.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
from typing import Iterable, Sequence

from inoc_jax.errors import ConfigError, DataError

KINDS = ("neutral", "inoculation", "unrelated_control", "wrong_concept_control", "placebo_control", "ptst",
         "compliance")


@dataclasses.dataclass(frozen=True)
class Prompt:
  name: str      # snake_case key
  label: str     # the paper's name for it
  text: str
  kind: str      # one of KINDS
  source: str    # where the text is printed
  verbatim: bool = True  # False: printed in no paper (provenance in `source`)
  variant: str = ""  # sub-experiment it belongs to (e.g. cebab 'food')


def normalize(name: str) -> str:
  """'IP Note: Correct' -> 'ip_note_correct'; 'No C#' -> 'no_csharp'."""
  name = name.strip().lower().replace("c#", "csharp").replace("+", "_")
  return re.sub(r"[^a-z0-9]+", "_", name).strip("_")


def _looks_like_name(value: str) -> bool:
  return bool(re.fullmatch(r"[A-Za-z0-9_]+", value.strip()))


class PromptTable:
  """One setting's registered prompts: lookup by name or paper label, with suggestions for typos."""

  def __init__(self, setting: str, entries: Sequence[Prompt]):
    self.setting = setting
    self.entries = tuple(entries)
    self._index: dict[str, Prompt] = {}
    for p in self.entries:
      if p.kind not in KINDS:
        raise ValueError(f"{setting} prompt {p.name!r} has kind {p.kind!r}, not one of {KINDS}")
      self._index.setdefault(p.name, p)
      self._index.setdefault(normalize(p.label), p)

  def all(self, kind: str | None = None, variant: str | None = None) -> list[Prompt]:
    return [p for p in self.entries if (kind is None or p.kind == kind) and (variant is None or p.variant == variant)]

  def get(self, name: str) -> Prompt:
    """A registered prompt, or a ConfigError that suggests the closest names."""
    found = self._index.get(normalize(name))
    if found is None:
      names = [p.name for p in self.entries]
      close = difflib.get_close_matches(normalize(name), names, n=3)
      hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
      known = f"known: {', '.join(names)} " if names else "it registers no prompt names "
      raise ConfigError(f"{name!r} is not a {self.setting} prompt name; {hint}{known}(or give the instruction's "
                        "full text).")
    return found

  def resolve(self, name_or_text: str) -> str:
    """Registry name or label -> its text; '' and 'neutral' -> '' (Neutral); other text is returned as given.

    A single identifier-like word that is not registered is an error (a typo), not text.
    """
    value = name_or_text or ""
    if not value.strip() or (value == "neutral" and value not in self._index):
      return ""
    if normalize(value) in self._index:
      return self._index[normalize(value)].text
    if _looks_like_name(value):
      self.get(value)  # raises with suggestions
    return value

  def label(self, value: str) -> str:
    """'neutral' / '' / a registered name -> the paper's label ('Neutral', 'IP Behave Correct'); text as given."""
    if not value or value == "neutral":
      return "Neutral"
    found = self._index.get(normalize(value))
    return found.label if found else value

  def train_pool(self, train_prompt: str, train_prompts: Sequence[str]) -> list[str]:
    """Texts one of which is inserted into each training example ([''] = Neutral)."""
    if train_prompt and train_prompts:
      raise ConfigError("Set data.train_prompt (one prompt) or data.train_prompts (several, one sampled per "
                        "example), not both.")
    entries = [train_prompt] if train_prompt else list(train_prompts)
    pool = [self.resolve(value) for value in expand(entries)]
    return pool or [""]


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def read_prompt_file(path: str) -> list[str]:
  """One prompt per line; '#' comments and blank lines skipped; backslash escapes \\n \\t \\\\ decoded."""
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except OSError as e:
    raise ConfigError(f"Cannot read the prompt file {path!r} ({e.strerror}); check the path after '@'.") from None
  prompts = []
  for number, line in enumerate(lines, start=1):
    if not line.strip() or line.lstrip().startswith("#"):
      continue
    pieces = re.split(r"(\\.?)", line)
    for piece in pieces[1::2]:
      if piece[1:] not in _ESCAPES:
        raise DataError(f"{path} line {number}: unknown escape {piece!r}; use \\n, \\t or \\\\ "
                        "(newline, tab, backslash).")
    prompts.append("".join(p if i % 2 == 0 else _ESCAPES[p[1:]] for i, p in enumerate(pieces)))
  if not prompts:
    raise ConfigError(f"The prompt file {path!r} holds no prompt (blank lines and '#' comments are skipped).")
  return prompts


def expand(entries: Iterable[str]) -> list[str]:
  """Config entries -> prompt values, reading '@file' entries."""
  values = []
  for entry in entries:
    values.extend(read_prompt_file(entry[1:]) if entry.startswith("@") else [entry])
  return values


def choose(pool: Sequence[str], seed: int, example_id: str) -> str:
  """The prompt of one example: a pure function of (seed, example id), so it never depends on order."""
  if len(pool) == 1:
    return pool[0]
  digest = hashlib.sha256(f"{seed}:{example_id}".encode()).digest()
  return pool[int.from_bytes(digest[:8], "little") % len(pool)]
