"""A researcher's own chat data as a setting: rows of `messages` (system / user / assistant), as in OpenAI's and
TRL's conversational format, from JSONL, JSON, parquet or a Hugging Face `datasets` folder (`save_to_disk`), on
a local disk or in a bucket (gs://).

    {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
     "metadata": {"answer": "4"}, "inoculate": true}

Options (`config.data.conversations`, defaults in inoc_jax/settings/conversations.py):
  train_file, eval_file   the two files (eval rows end with a user turn; a final assistant turn is dropped and
                          kept as metadata 'reference');
  placement, separator    where the instruction goes when data.prompt_placement='setting': 'system' (prepended to
                          the row's system message, or a new one), 'user_start' / 'user_end' (before / after the
                          first user turn), joined with `separator`;
  instruct_column         '' = every training row gets the train prompt, else only rows whose column is true;
  instruct_fraction       and of those, this share (chosen per row from the seed and the row number);
  on_bad_rows             'skip' (count them and log each by row number) | 'error' (stop at the first).
Metadata for scorers: the row's `metadata` object and every other top-level column, plus 'row' (1-based).
A row is bad when it has no `messages` list, a message without a known role or with empty text, a system
message after the first turn, no user turn, or (training) no final assistant turn; examples too long for
data.seq_len are dropped and named by the pipeline like any other setting's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any, Iterator

from inoc_jax.data import prompts
from inoc_jax.data.conversation import Example, Message, with_instruction
from inoc_jax.data.settings.placement import place
from inoc_jax.errors import ConfigError, DataError
from inoc_jax.runtime import storage

log = logging.getLogger("inoc_jax")

EVAL_SPLITS = ("eval", "train")
ROLES = ("system", "user", "assistant")
PLACEMENTS = ("system", "user_start", "user_end")
FORMATS = (".jsonl", ".json", ".parquet", "a datasets folder")


@dataclasses.dataclass(frozen=True)
class BadRow:
  row: int      # 1-based, in file order
  reason: str


def _read_jsonl(text: str) -> Iterator[Any]:
  for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 may sit inside a JSON string
    if not line.strip():
      yield None
      continue
    try:
      yield json.loads(line)
    except json.JSONDecodeError as e:
      yield BadRow(number, f"not JSON ({e.msg})")


def _read_arrow_folder(path: str) -> list[Any]:
  """A `datasets.Dataset.save_to_disk` folder: Arrow IPC stream files listed in state.json (no `datasets` needed)."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  state = json.loads(storage.read_text(storage.join(path, "state.json")))
  rows = []
  for entry in state.get("_data_files", []):
    data = storage.read_bytes(storage.join(path, entry["filename"]))
    rows.extend(pa.ipc.open_stream(pa.BufferReader(data)).read_all().to_pylist())
  return rows


def read_rows(path: str, what: str) -> list[Any]:
  """Every row of a local or bucket (gs://) file, in order (an unparsable row is a BadRow; a blank JSONL line is None)."""
  if not path:
    raise ConfigError(f"data.conversations.{what} is empty; set it to a {', '.join(FORMATS)} of chat rows.")
  path = storage.resolve(path)
  if not storage.exists(path):
    raise ConfigError(f"data.conversations.{what} {path!r} does not exist; check the path.")
  suffix = os.path.splitext(path)[1]
  try:
    if suffix not in (".jsonl", ".json", ".parquet"):
      if storage.exists(storage.join(path, "state.json")):
        return _read_arrow_folder(path)
      if storage.isdir(path):
        raise ConfigError(f"{path!r} is a folder without state.json; give a datasets.save_to_disk folder or a file.")
    if suffix == ".jsonl":
      return list(_read_jsonl(storage.read_text(path)))
    if suffix == ".json":
      data = json.loads(storage.read_text(path))
      if not isinstance(data, list):
        raise DataError(f"{path} must hold a JSON list of rows; use .jsonl for one row per line.")
      return data
    if suffix == ".parquet":
      import pyarrow as pa  # pylint: disable=g-import-not-at-top
      import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
      return pq.read_table(pa.BufferReader(storage.read_bytes(path))).to_pylist()
  except (OSError, ValueError) as e:
    raise DataError(f"Cannot read {path} ({e}); check that it is a valid {suffix or 'file'}.") from None
  raise ConfigError(f"data.conversations.{what} {path!r} is not one of {', '.join(FORMATS)}.")


def _messages(row: Any, training: bool) -> tuple[tuple[Message, ...], str] | str:
  """(messages, reference) of a valid row, else the reason it is bad."""
  if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
    return "no 'messages' list"
  messages = []
  for index, turn in enumerate(row["messages"], start=1):
    role = turn.get("role") if isinstance(turn, dict) else None
    content = turn.get("content") if isinstance(turn, dict) else None
    if role not in ROLES:
      return f"message {index} has role {role!r} (not one of {', '.join(ROLES)})"
    if not isinstance(content, str) or not content.strip():
      return f"message {index} ({role}) has no text"
    if role == "system" and index > 1:
      return f"message {index} is a system message after the first turn"
    messages.append(Message.plain(role, content))
  if not any(m.role == "user" for m in messages):
    return "no user turn"
  reference = ""
  if training and messages[-1].role != "assistant":
    return "no final assistant turn"
  if not training and messages[-1].role == "assistant":
    reference = messages.pop().content
  if not training and messages[-1].role != "user":
    return "does not end with a user turn"
  return tuple(messages), reference


def _metadata(row: dict, number: int, reference: str) -> dict:
  meta = {k: v for k, v in row.items() if k not in ("messages", "metadata")}
  if isinstance(row.get("metadata"), dict):
    meta.update(row["metadata"])
  meta.update(row=number, reference=reference)
  return meta


def _insert(messages: tuple[Message, ...], instruction: str, options) -> tuple[Message, ...]:
  """The setting's own placement (data.conversations.placement) of `instruction`."""
  if not instruction:
    return messages
  out, separator = list(messages), options.separator
  if options.placement == "system":
    if out[0].role == "system":
      out[0] = with_instruction(out[0], instruction, separator, before=True)
    else:
      out.insert(0, with_instruction(Message("system", ()), instruction, ""))
    return tuple(out)
  first_user = next(i for i, m in enumerate(out) if m.role == "user")
  out[first_user] = with_instruction(out[first_user], instruction, separator, before=options.placement == "user_start")
  return tuple(out)


def _gets_instruction(meta: dict, seed: int, options) -> bool:
  """Whether a training row is inoculated: its instruct_column is true, then a seeded share instruct_fraction."""
  if options.instruct_column:
    if options.instruct_column not in meta:
      raise DataError(f"training row {meta['row']} has no column {options.instruct_column!r} "
                      "(data.conversations.instruct_column); add it to every row or clear the option.")
    if not meta[options.instruct_column]:
      return False
  if options.instruct_fraction >= 1.0:
    return True
  digest = hashlib.sha256(f"{seed}:conversations-row{meta['row']}".encode()).digest()
  return int.from_bytes(digest[:8], "little") / 2.0**64 < options.instruct_fraction


def _examples(config, path_field: str, training: bool, instruction_for) -> list[Example]:
  options = config.data.conversations
  path = options[path_field]
  kept, bad = [], []
  for number, row in enumerate(read_rows(path, path_field), start=1):
    if row is None:
      continue
    parsed = row.reason if isinstance(row, BadRow) else _messages(row, training)
    if isinstance(parsed, str):
      if options.on_bad_rows == "error":
        raise DataError(f"{path} row {number}: {parsed}; fix the row or set data.conversations.on_bad_rows=skip.")
      bad.append(BadRow(number, parsed))
      continue
    messages, reference = parsed
    meta = _metadata(row, number, reference)
    instruction = instruction_for(meta)
    built = place(config.data.prompt_placement, instruction, lambda text: _insert(messages, text, options))
    kept.append(Example(f"{'train' if training else 'eval'}-row{number}", built, meta))
  if bad:
    listed = "; ".join(f"row {b.row}: {b.reason}" for b in bad[:20])
    more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
    log.warning("%s: skipped %d bad rows of %d (%s%s)", path, len(bad), len(bad) + len(kept), listed, more)
  if not kept:
    first = f" (row {bad[0].row}: {bad[0].reason})" if bad else ""
    raise DataError(f"{path} has no usable chat row{first}; each row needs a 'messages' list of system / user / "
                    "assistant turns.")
  return kept


def build(config, pool: list[str]) -> tuple[list[Example], list[Example]]:
  """The usable rows of train_file; the last data.num_heldout_examples of them are held out."""
  options = config.data.conversations

  def instruction_for(meta: dict) -> str:
    if not _gets_instruction(meta, config.seed, options):
      return ""
    return prompts.choose(pool, config.seed, f"conversations-row{meta['row']}")

  rows = _examples(config, "train_file", True, instruction_for)
  heldout_count = config.data.num_heldout_examples
  if heldout_count >= len(rows):
    raise ConfigError(f"data.num_heldout_examples={heldout_count} leaves no training row of {len(rows)}; lower it.")
  train, heldout = rows[:len(rows) - heldout_count], rows[len(rows) - heldout_count:]
  if config.data.num_train_examples:
    train = train[:config.data.num_train_examples]
  return train, heldout


def eval_suite(config, eval_prompt: str, split: str) -> list[Example]:
  """eval_file's rows ('train': the training file's, to check what was learned), each with the eval instruction."""
  field = "eval_file" if split == "eval" else "train_file"
  return _examples(config, field, False, lambda meta: eval_prompt)


def config_problems(config) -> list[str]:
  options = config.data.conversations
  checks = [
      (options.placement in PLACEMENTS, f"data.conversations.placement must be one of {', '.join(PLACEMENTS)}"),
      (0.0 <= options.instruct_fraction <= 1.0, "data.conversations.instruct_fraction must be in [0, 1]"),
      (options.on_bad_rows in ("skip", "error"), "data.conversations.on_bad_rows must be skip or error"),
      (bool(options.train_file), "data.conversations.train_file is empty; set it to your chat rows"),
  ]
  return [message for ok, message in checks if not ok]
