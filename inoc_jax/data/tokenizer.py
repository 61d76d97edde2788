"""Tokenizers with character offsets, so per-character roles can be mapped onto tokens.

Two kinds share one interface:

  * `ByteTokenizer`: UTF-8 bytes, for random-init models with no vocabulary files.
  * `TextTokenizer`: a Hugging Face `tokenizers.Tokenizer` plus the special-token
    strings and chat template that came with it (from a `tokenizer.json` folder
    or from a GGUF file's metadata; see `tokenizer_loading.py`).

Interface: `encode(text) -> list[int]` (never adds bos/eos: chat templates write
them), `encode_with_offsets(text) -> (ids, [(start, end) char spans])`,
`decode(ids)`, `vocab_size`, `bos_id`, `eos_id`, `pad_id`, `special_tokens`
(template variables such as `bos_token`) and `chat_template` (None if unknown).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


class ByteTokenizer:
  """UTF-8 bytes shifted by the number of special tokens.

  Ids: 0 pad, 1 bos, 2 eos, 3 end-of-turn, 4.. bytes. Vocab 260 fits every tiny preset.
  """

  num_special = 4
  pad_id, bos_id, eos_id, end_of_turn_id = 0, 1, 2, 3
  vocab_size = 260
  chat_template = None
  name = "byte"

  @property
  def special_tokens(self) -> dict[str, str]:
    return {}

  def encode(self, text: str) -> list[int]:
    return [b + self.num_special for b in text.encode("utf-8")]

  def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    ids, offsets = [], []
    for char_index, char in enumerate(text):
      for byte in char.encode("utf-8"):
        ids.append(byte + self.num_special)
        offsets.append((char_index, char_index + 1))
    return ids, offsets

  def decode(self, ids) -> str:
    data = bytes(int(i) - self.num_special for i in np.asarray(ids).ravel() if int(i) >= self.num_special)
    return data.decode("utf-8", errors="replace")

  def id_to_token(self, token_id: int) -> str:
    specials = {0: "<pad>", 1: "<bos>", 2: "<eos>", 3: "<end_of_turn>"}
    return specials.get(int(token_id)) or repr(bytes([int(token_id) - self.num_special]))[2:-1]


class TextTokenizer:
  """A `tokenizers.Tokenizer` with the special tokens and chat template of its model.

  Attributes:
    backend: the `tokenizers.Tokenizer` (ids and char offsets; special tokens are added tokens).
    special_tokens: template variables, e.g. {'bos_token': '<|im_start|>', 'eos_token': '<|im_end|>'}.
    chat_template: the model's Jinja chat template, or None.
    name: where it came from (file or folder), for messages.
  """

  def __init__(self, backend, special_tokens: Mapping[str, str], chat_template: str | None, name: str):
    self.backend = backend
    self.special_tokens = {k: v for k, v in special_tokens.items() if v}
    self.chat_template = chat_template
    self.name = name
    self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
    self.bos_id = self._id_of("bos_token")
    self.eos_id = self._id_of("eos_token")
    pad = self._id_of("pad_token")
    self.pad_id = pad if pad is not None else (self.eos_id if self.eos_id is not None else 0)
    self.special_ids = frozenset(i for i, tok in backend.get_added_tokens_decoder().items() if tok.special)

  def _id_of(self, key: str) -> int | None:
    token = self.special_tokens.get(key)
    return None if token is None else self.backend.token_to_id(token)

  def token_to_id(self, token: str) -> int | None:
    return self.backend.token_to_id(token)

  def id_to_token(self, token_id: int) -> str:
    return self.backend.id_to_token(int(token_id))

  def encode(self, text: str) -> list[int]:
    return self.backend.encode(text, add_special_tokens=False).ids

  def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    encoding = self.backend.encode(text, add_special_tokens=False)
    return encoding.ids, encoding.offsets

  def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = False) -> str:
    return self.backend.decode([int(i) for i in np.asarray(ids).ravel()], skip_special_tokens=skip_special_tokens)
