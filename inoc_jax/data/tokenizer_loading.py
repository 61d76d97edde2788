"""Finding and loading tokenizers: `load_tokenizer(spec)` for what `data.tokenizer` says.

Accepted: 'byte', a Hugging Face folder (tokenizer.json + tokenizer_config.json,
optional chat_template.jinja / special_tokens_map.json), a .gguf file, a known
model name (e.g. 'smollm2-135m-instruct') or a Hub id (downloaded when online),
all resolved by `inoc_jax.model_sources.resolve`.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from inoc_jax.data.gguf_tokenizer import load_gguf_tokenizer
from inoc_jax.data.tokenizer import ByteTokenizer, TextTokenizer
from inoc_jax.errors import DataError, InocJaxError

SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


def _read_json(path: str) -> dict[str, Any]:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise DataError(f"{path} line {e.lineno} is not valid JSON ({e.msg}); restore the file from the model's "
                    "release.") from None


def _token_text(value) -> str | None:
  """tokenizer_config values are strings or AddedToken dicts ({'content': ...})."""
  if isinstance(value, dict):
    return value.get("content")
  return value if isinstance(value, str) else None


def _chat_template(folder: str, config: dict[str, Any]) -> str | None:
  jinja_file = os.path.join(folder, "chat_template.jinja")
  if os.path.isfile(jinja_file):
    with open(jinja_file, encoding="utf-8") as f:
      return f.read()
  template = config.get("chat_template")
  if isinstance(template, list):  # named templates: [{'name': 'default', 'template': ...}, ...]
    named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
    template = named.get("default") or next(iter(named.values()), None)
  return template if isinstance(template, str) else None


@functools.lru_cache(maxsize=4)
def load_hf_tokenizer(folder: str) -> TextTokenizer:
  """Folder with tokenizer.json (+ tokenizer_config.json) -> TextTokenizer."""
  from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top

  tokenizer_file = os.path.join(folder, "tokenizer.json")
  if not os.path.isfile(tokenizer_file):
    raise DataError(f"{folder} has no tokenizer.json; point data.tokenizer at a folder saved by "
                    "`save_pretrained` (fast tokenizer) or at a GGUF file.")
  try:
    backend = Tokenizer.from_file(tokenizer_file)
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"Cannot parse {tokenizer_file} ({e}); re-save the tokenizer with a recent `tokenizers`.") from None
  config_file = os.path.join(folder, "tokenizer_config.json")
  config = _read_json(config_file) if os.path.isfile(config_file) else {}
  specials_file = os.path.join(folder, "special_tokens_map.json")
  legacy = _read_json(specials_file) if os.path.isfile(specials_file) else {}
  specials = {key: _token_text(config.get(key)) or _token_text(legacy.get(key)) for key in SPECIAL_KEYS}
  return TextTokenizer(backend, specials, _chat_template(folder, config), name=folder)


def load_tokenizer(spec: str):
  """'byte' | folder | .gguf | known name | hub id -> ByteTokenizer or TextTokenizer."""
  if spec == "byte":
    return ByteTokenizer()
  from inoc_jax import model_sources  # pylint: disable=g-import-not-at-top
  try:
    source = model_sources.resolve(spec)
  except InocJaxError as e:
    raise DataError(f"data.tokenizer {spec!r}: {e}") from None
  if source.kind == "gguf":
    return load_gguf_tokenizer(os.path.abspath(source.path))
  return load_hf_tokenizer(os.path.abspath(source.path))
