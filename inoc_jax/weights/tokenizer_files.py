"""Tokenizer files to ship with an exported model, taken from the run's tokenizer source.

An HF folder's files are copied as they are. A GGUF's tokenizer is rebuilt by
the data layer (`inoc_jax.data.tokenizer_loading.load_tokenizer`) and written as
`tokenizer.json` + `tokenizer_config.json` (special tokens, chat template).
The byte tokenizer of random-init models has no files.
"""

from __future__ import annotations

import json
import logging

from inoc_jax import model_sources
from inoc_jax.errors import InocJaxError

log = logging.getLogger("inoc_jax")


def tokenizer_spec(data_tokenizer: str, model_checkpoint: str) -> str:
  """`data.tokenizer` with 'auto' meaning the model's own source; '' when there are no files."""
  spec = model_checkpoint if data_tokenizer == "auto" else data_tokenizer
  return "" if spec in ("", "byte") else spec


def _gguf_tokenizer_files(spec: str) -> dict[str, str]:
  try:
    from inoc_jax.data.tokenizer_loading import load_tokenizer  # pylint: disable=g-import-not-at-top
  except ImportError:
    log.warning("export: no GGUF tokenizer support in this checkout; tokenizer files not written")
    return {}
  try:
    tokenizer = load_tokenizer(spec)
  except InocJaxError as e:  # e.g. a GGUF without tokenizer metadata: the weights are still worth exporting
    log.warning("export: tokenizer files not written (%s)", e)
    return {}
  backend = getattr(tokenizer, "backend", None)
  if backend is None:
    return {}
  config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
            **dict(getattr(tokenizer, "special_tokens", {}))}
  if getattr(tokenizer, "chat_template", None):
    config["chat_template"] = tokenizer.chat_template
  return {"tokenizer.json": backend.to_str(), "tokenizer_config.json": json.dumps(config, indent=2)}


def tokenizer_files(spec: str) -> tuple[str | None, dict[str, str]]:
  """(folder whose tokenizer files to copy, {file name: text} to write) for a tokenizer source."""
  if not spec:
    return None, {}
  source = model_sources.resolve(spec)
  if source.kind == "hf_dir":
    return source.path, {}
  return None, _gguf_tokenizer_files(spec)
