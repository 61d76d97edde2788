"""Run-directory files on a local disk or in a bucket (gs://, s3://, memory:// ...).

Multi-host runs need a workdir every host can reach, and on Cloud TPU VMs that
is a gs:// bucket (Orbax writes checkpoints there natively). The trainer's own
small files (config.json, metrics.jsonl, summary.json) go through these
functions: local paths use the OS, URLs use fsspec (gs:// needs `gcsfs`,
installed by `pip install -e ".[tpu]"` or `".[gcs]"`).

Object stores cannot append, so `LineLog` keeps the lines it wrote and rewrites
the object at most every `flush_seconds` (and on close); a run killed between
flushes loses at most that many seconds of metrics, never the checkpoints.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import posixpath
import time
from typing import Any

from inoc_jax.errors import ConfigError


def json_safe(value: Any) -> Any:
  """`value` with every NaN or infinite float replaced by None (JSON has neither; `json.dumps` writes bare NaN)."""
  if isinstance(value, bool) or value is None:
    return value
  if isinstance(value, numbers.Integral):  # numpy integers too
    return int(value)
  if isinstance(value, numbers.Real):      # numpy floats too
    value = float(value)
    return value if math.isfinite(value) else None
  if isinstance(value, dict):
    return {k: json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  return value


def dumps_json(value: Any, **kwargs) -> str:
  """Strict JSON text of `value` (non-finite numbers as null, other objects as str)."""
  return json.dumps(json_safe(value), allow_nan=False, default=str, **kwargs)


def is_remote(path: str) -> bool:
  return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
  return path[len("file://"):] if path.startswith("file://") else path


def _filesystem(path: str):
  try:
    import fsspec  # pylint: disable=g-import-not-at-top
    return fsspec.core.url_to_fs(path)[0]
  except (ImportError, ValueError) as e:  # fsspec: ImportError = driver missing, ValueError = unknown protocol
    protocol = path.split("://", 1)[0]
    package = {"gs": "gcsfs", "s3": "s3fs"}.get(protocol, f"an fsspec driver for {protocol}://")
    raise ConfigError(f"The path {path} needs {package} ({e}); install it, e.g. pip install -e '.[gcs]' for gs://.") from None


def resolve(path: str) -> str:
  """An absolute local path (`~` expanded, relative to the current directory); URLs unchanged.

  Orbax refuses relative paths, and a run that later changes directory must still
  find its own files, so every user-given run path goes through here first.
  """
  if not path or is_remote(path):
    return path
  return os.path.abspath(os.path.expanduser(_local(path)))


def resolve_if_local(source: str) -> str:
  """`resolve(source)` when it names an existing local file or folder, else unchanged (a Hub id, a known name)."""
  if not source or is_remote(source):
    return source
  return resolve(source) if os.path.exists(os.path.expanduser(_local(source))) else source


def make_workdir(path: str) -> None:
  """Creates a run folder, or raises ConfigError naming the problem (a file there, no permission, read-only)."""
  try:
    makedirs(path)
  except FileExistsError:
    raise ConfigError(f"The workdir {path} is a file, not a folder; pass another --workdir.") from None
  except OSError as e:
    raise ConfigError(f"Cannot create the workdir {path} ({e.strerror or e}); pass a writable folder with "
                      "--workdir.") from None
  if not is_remote(path) and not os.access(_local(path), os.W_OK | os.X_OK):
    raise ConfigError(f"The workdir {path} is not writable; pass a writable folder with --workdir.")


def join(base: str, *parts: str) -> str:
  return posixpath.join(base, *parts) if is_remote(base) else os.path.join(_local(base), *parts)


def makedirs(path: str) -> None:
  if is_remote(path):
    _filesystem(path).makedirs(path, exist_ok=True)
  else:
    os.makedirs(_local(path), exist_ok=True)


def _replace(path: str, data: str | bytes) -> None:
  """Replaces the file at `path` with `data` (text as UTF-8); atomically on a local disk."""
  mode = "wb" if isinstance(data, bytes) else "w"
  if is_remote(path):
    with _filesystem(path).open(path, mode) as f:
      f.write(data)
    return
  path = _local(path)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, mode, encoding=None if mode == "wb" else "utf-8") as f:
    f.write(data)
  os.replace(tmp, path)


def write_text(path: str, text: str) -> None:
  _replace(path, text)


def read_text(path: str) -> str:
  if is_remote(path):
    with _filesystem(path).open(path, "r") as f:
      return f.read()
  with open(_local(path), encoding="utf-8") as f:
    return f.read()


def read_bytes(path: str) -> bytes:
  if is_remote(path):
    with _filesystem(path).open(path, "rb") as f:
      return f.read()
  with open(_local(path), "rb") as f:
    return f.read()


def exists(path: str) -> bool:
  return _filesystem(path).exists(path) if is_remote(path) else os.path.exists(_local(path))


def isdir(path: str) -> bool:
  return _filesystem(path).isdir(path) if is_remote(path) else os.path.isdir(_local(path))


def write_bytes(path: str, data: bytes) -> None:
  """Replaces the file at `path` (figures)."""
  _replace(path, data)


def glob(pattern: str) -> list[str]:
  """Sorted paths matching `pattern` (`*` within one folder level), as URLs when the pattern is one."""
  if not is_remote(pattern):
    import glob as glob_lib  # pylint: disable=g-import-not-at-top
    return sorted(glob_lib.glob(_local(pattern)))
  protocol = pattern.split("://", 1)[0]
  found = _filesystem(pattern).glob(pattern)
  return sorted(p if "://" in p else f"{protocol}://{p.lstrip('/')}" for p in found)


class LineLog:
  """An append-only text file of lines (JSON lines for metrics), local or remote."""

  def __init__(self, path: str, flush_seconds: float = 30.0):
    self.path, self.flush_seconds = path, flush_seconds
    self._remote = is_remote(path)
    self._lines: list[str] = []
    self._last_flush: float | None = None  # the first line is written at once
    if self._remote:
      if exists(path):  # a resumed run keeps the earlier lines
        self._lines = read_text(path).splitlines(keepends=True)
      self._file = None
    else:
      self._file = open(_local(path), "a", encoding="utf-8")

  def write(self, line: str) -> None:
    line = line if line.endswith("\n") else line + "\n"
    if not self._remote:
      self._file.write(line)
      self._file.flush()
      return
    self._lines.append(line)
    if self._last_flush is None or time.monotonic() - self._last_flush >= self.flush_seconds:
      self.flush()

  def flush(self) -> None:
    if self._remote:
      write_text(self.path, "".join(self._lines))
      self._last_flush = time.monotonic()
    else:
      self._file.flush()

  def close(self) -> None:
    if self._remote:
      self.flush()
    elif self._file is not None:
      self._file.close()
      self._file = None
