"""One training run per workdir: `<workdir>/run.lock`, held for the run's lifetime.

Two runs writing one workdir destroy each other's checkpoints (Orbax deletes the
other's in-progress temporary folders at start-up). The lock is an exclusive
`flock` on the file, which the kernel releases when its process dies however it
dies (kill -9 included), so a lock left by a dead run is detected as stale and
taken over; the file names the holder (host, pid, start time) for the message a
second run prints. Only process 0 of a job locks, and only local workdirs: an
object store (gs://) has no locks, and there the job scheduler is what keeps
two jobs apart.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time

from inoc_jax.errors import ConfigError
from inoc_jax.runtime import layout, storage

log = logging.getLogger("inoc_jax")

LOCK_NAME = layout.LOCK


class WorkdirLock:
  """Context manager; `acquire()` raises ConfigError (one sentence) when another live run holds the workdir."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.path = os.path.join(workdir, LOCK_NAME)
    self.enabled = enabled and not storage.is_remote(workdir)
    self._fd: int | None = None

  def acquire(self) -> None:
    if not self.enabled or self._fd is not None:
      return
    while True:
      fd = _open_locked(self.path)
      if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
        break
      os.close(fd)  # the previous holder removed the file between our open and our lock: lock the new one
    stale = _read(fd)
    if stale:
      log.warning("workdir lock: taking over the stale lock of a run that is gone (%s)", _describe(stale))
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    self._fd = fd

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      os.unlink(self.path)  # while still locked, so no other run can take over a file about to vanish
    except OSError:
      pass
    os.close(self._fd)
    self._fd = None

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def _open_locked(path: str) -> int:
  """An fd of `path` with an exclusive flock; ConfigError when another process holds it or it cannot be made."""
  workdir = os.path.dirname(path)
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise ConfigError(f"Cannot write in the workdir {workdir} ({e.strerror}); pass a writable folder with "
                      "--workdir.") from None
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = _describe(_read(fd))
    os.close(fd)
    raise ConfigError(f"The workdir {workdir} is in use by another run ({holder}); wait for it to finish or stop "
                      "it, or pass another --workdir.") from None
  return fd


def _read(fd: int) -> dict:
  try:
    return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
  except ValueError:
    return {}


def _describe(holder: dict) -> str:
  if not holder:
    return "holder unknown"
  started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
  return f"pid {holder.get('pid')} on host {holder.get('host')}, started {started}"
