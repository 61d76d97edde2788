"""Per-token role ids carried by every batch.

The chat renderer tags each token with the role of the text it came from; the
inoculation instruction gets its own role even though it sits inside a user
turn, so the loss mask can include or exclude it independently.
"""

import enum


class Role(enum.IntEnum):
  PAD = 0
  SYSTEM = 1
  USER = 2
  INOCULATION = 3
  ASSISTANT = 4


ROLE_NAMES = {role: role.name.lower() for role in Role}
