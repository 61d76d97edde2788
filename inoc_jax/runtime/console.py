"""What the library prints while it works (progress bars), apart from the command-line programs' own set-up."""

from __future__ import annotations

import sys


def progress_interval() -> float:
  """Seconds between progress-bar refreshes: live on a terminal, sparse in log files."""
  return 0.5 if sys.stderr.isatty() else 30.0
