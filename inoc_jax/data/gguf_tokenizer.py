"""A `tokenizers.Tokenizer` rebuilt from a GGUF file's `tokenizer.ggml.*` metadata.

GGUF stores a BPE tokenizer as its vocabulary (`tokens`, index = id), `merges`
("a b" strings in rank order), `token_type` (1 normal, 3 control, 4 user-defined,
6 byte), the special ids, the chat template, and `pre`: the name of llama.cpp's
pre-tokenizer. The pre-tokenizer is rebuilt from that name with the splits the
model's own `tokenizer.json` uses (SmolLM2: digits split one by one, then GPT-2
byte-level splitting). Note: `transformers`' GGUF loader ignores `pre`; it
therefore differs from the model's tokenizer (and from llama.cpp) when a run of
two or more whitespace characters precedes a digit. We follow the model.
"""

from __future__ import annotations

import functools
import os

from inoc_jax.data.gguf_metadata import GGUFFormatError, read_metadata
from inoc_jax.errors import DataError

# Pre-tokenizer regexes of the models' tokenizer.json files (llama.cpp names them by `tokenizer.ggml.pre`).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")

TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


def _pre_tokenizer(kind: str, path: str):
  from tokenizers import Regex, pre_tokenizers  # pylint: disable=g-import-not-at-top
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
  if kind == "smollm":
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
  if kind in ("gpt2", "default"):
    return byte_level
  split = {"llama-bpe": LLAMA3_SPLIT, "llama3": LLAMA3_SPLIT, "qwen2": QWEN2_SPLIT}.get(kind)
  if split is None:
    raise DataError(f"GGUF file {path} uses the pre-tokenizer {kind!r}, which inoc_jax cannot rebuild "
                    "(supported: smollm, gpt2, llama-bpe, qwen2); set data.tokenizer to the model's "
                    "Hugging Face folder (tokenizer.json) instead.")
  return pre_tokenizers.Sequence([
      pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
      pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])


def _field(reader: dict, key: str, path: str, default=None, required: bool = False):
  if key not in reader:
    if required:
      raise DataError(f"GGUF file {path} has no {key!r} metadata, so its tokenizer cannot be rebuilt; "
                      "use the model's Hugging Face folder (tokenizer.json) instead.")
    return default
  return reader[key]


@functools.lru_cache(maxsize=4)
def load_gguf_tokenizer(path: str):
  """GGUF file -> TextTokenizer (cached per path)."""
  from tokenizers import AddedToken, Tokenizer, decoders, models  # pylint: disable=g-import-not-at-top

  from inoc_jax.data.tokenizer import TextTokenizer  # pylint: disable=g-import-not-at-top

  if not os.path.isfile(path):
    raise DataError(f"GGUF file {path} does not exist; check data.tokenizer / model.checkpoint.")
  try:
    reader = read_metadata(path)
  except (GGUFFormatError, OSError) as e:
    raise DataError(f"Cannot read {path} as a GGUF file ({e}); check that the file is complete.") from None
  model = _field(reader, "tokenizer.ggml.model", path, required=True)
  if model != "gpt2":
    raise DataError(f"GGUF file {path} holds a {model!r} tokenizer; only byte-level BPE ('gpt2') can be rebuilt "
                    "from GGUF metadata. Set data.tokenizer to the model's Hugging Face folder instead.")
  tokens = list(_field(reader, "tokenizer.ggml.tokens", path, required=True))
  merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges", path, required=True)]
  token_types = list(_field(reader, "tokenizer.ggml.token_type", path, default=[1] * len(tokens)))

  backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False,
                                 byte_fallback=False))
  backend.pre_tokenizer = _pre_tokenizer(_field(reader, "tokenizer.ggml.pre", path, default="gpt2"), path)
  backend.decoder = decoders.ByteLevel()
  backend.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                              for i in range(len(tokens)) if token_types[i] == TOKEN_TYPE_CONTROL])
  backend.add_tokens([AddedToken(tokens[i], special=False, normalized=False)
                      for i in range(len(tokens)) if token_types[i] == TOKEN_TYPE_USER_DEFINED])

  def token(key: str) -> str | None:
    index = _field(reader, f"tokenizer.ggml.{key}_token_id", path)
    return tokens[int(index)] if index is not None and 0 <= int(index) < len(tokens) else None

  specials = {"bos_token": token("bos"), "eos_token": token("eos"), "unk_token": token("unknown"),
              "pad_token": token("padding")}
  template = _field(reader, "tokenizer.chat_template", path)
  return TextTokenizer(backend, specials, template, name=path)
