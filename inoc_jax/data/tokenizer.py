"""Tokenizers. `ByteTokenizer` serves random-init models with no vocabulary files.

Every tokenizer exposes `encode(text) -> (ids, char_offsets)`, `decode(ids)`,
`vocab_size` and the special ids `bos_id`, `eos_id`, `pad_id`, so the chat
encoder can map character spans (roles) onto tokens.
"""

from __future__ import annotations

import numpy as np


class ByteTokenizer:
  """UTF-8 bytes shifted by the number of special tokens.

  Ids: 0 pad, 1 bos, 2 eos, 3 end-of-turn, 4.. bytes. Vocab 260 fits every tiny preset.
  """

  num_special = 4
  pad_id, bos_id, eos_id, end_of_turn_id = 0, 1, 2, 3
  vocab_size = 260

  def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    ids, offsets = [], []
    for char_index, char in enumerate(text):
      for byte in char.encode("utf-8"):
        ids.append(byte + self.num_special)
        offsets.append((char_index, char_index + 1))
    return ids, offsets

  def decode(self, ids) -> str:
    data = bytes(int(i) - self.num_special for i in np.asarray(ids).ravel() if int(i) >= self.num_special)
    return data.decode("utf-8", errors="replace")
