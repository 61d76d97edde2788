"""Run untrusted, model-written Python programs without letting them hurt the evaluator.

    sandbox = Sandbox(SandboxLimits(wall_seconds=30))
    results = sandbox.run_many([code_a, code_b])      # worker pool, one slot per worker
    results[0].passed, results[0].status

Each program runs through `sandbox_child.py` in its own session (process
group), with a scrubbed environment, no inherited file descriptors, a
wall-clock timeout and RLIMIT_CPU / AS / FSIZE / NOFILE / NPROC / CORE.

What is guaranteed depends on the host (`Sandbox.isolation` says which level
was reached; anything below "full" is logged once):

* full (running as root): the program runs as an unprivileged uid of its own
  worker slot (not in /etc/passwd) in new mount, network and PID namespaces:
  every mount is read-only, /tmp, /var/tmp, /dev/shm and /run are fresh
  size-limited tmpfs (its working directory is /tmp/work), every host unix
  socket still visible has /dev/null mounted over it, the network has only a
  loopback that is down, /proc shows only its own processes, and when it ends
  or times out every process of its uid is killed. It cannot modify or delete
  the evaluator's files (read-only mounts and another uid), read the
  evaluator's environment (scrubbed, and /proc/<pid>/environ of another uid
  is unreadable), signal the evaluator, or reach the network or a host service.
* userns (not root, unprivileged user namespaces allowed): the same
  namespaces and mounts, but the program keeps the evaluator's uid; a
  process that escapes the PID namespace's lifetime is impossible, so
  cleanup still holds.
* none: limits, a scrubbed environment and a private temporary working
  directory only (plus the slot uid when root, which keeps the evaluator's
  files, environment and processes out of reach, and still lets cleanup kill
  every process of the slot); the program could write world-writable files,
  connect to host sockets and use the network. 'auto' falls back to it only
  with `allow_unisolated=True` (`eval.sandbox_allow_unisolated`).

Every program also gets a completion pipe at fd `sandbox_child.DONE_FD`; what
it writes there is `ProgramResult.completion` (the MBPP scorer's end-of-tests
token travels there, so an early `sys.exit(0)` cannot pass).

Not guaranteed at any level: reading world-readable files (e.g. the code
base), CPU contention with the evaluator, or kernel-level isolation
(use a VM or gVisor for adversarial workloads).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Sequence

from inoc_jax.errors import SandboxError
from inoc_jax.evaluation import sandbox_child

log = logging.getLogger("inoc_jax")

CHILD_SCRIPT = os.path.abspath(sandbox_child.__file__)
SCRUBBED_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
FIRST_SLOT_UID, MAX_SLOTS = 3_000_000, 256  # slot uids: 3e6 + 256 * pid + slot, below 2**31 for any pid
PASSED, FAILED, TIMEOUT, INFRA = "passed", "failed", "timeout", "infrastructure_error"


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
  """Per-program limits (the paper's MBPP check uses a 30 s timeout)."""

  wall_seconds: float = 30.0
  cpu_seconds: int = 30
  memory_bytes: int = 1 << 30
  file_size_bytes: int = 16 << 20
  open_files: int = 64
  processes: int = 32
  tmpfs_bytes: int = 64 << 20
  output_bytes: int = 64 << 10  # stdout/stderr kept per program


@dataclasses.dataclass(frozen=True)
class ProgramResult:
  """status: passed (exit 0) | failed (non-zero exit or killed) | timeout | infrastructure_error."""

  status: str
  returncode: int | None
  stdout: str
  stderr: str
  wall_seconds: float
  detail: str = ""
  completion: str = ""  # what the program wrote to fd DONE_FD (e.g. a scorer's end-of-tests token)

  @property
  def passed(self) -> bool:
    return self.status == PASSED

  @property
  def infrastructure_failure(self) -> bool:
    return self.status == INFRA


def _signal_name(number: int) -> str:
  try:
    return signal.Signals(number).name
  except ValueError:
    return f"signal {number}"


def _hit_cpu_limit(returncode: int) -> bool:
  """True when RLIMIT_CPU ended the program: SIGXCPU at the soft limit, SIGKILL at the hard one.

  Which limit fires first depends on load (wall clock on a busy machine, CPU
  time on an idle one), so both count as a timeout. A program that SIGKILLs
  itself is counted the same way; it has not passed either way.
  """
  signal_number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
  return signal_number in (signal.SIGXCPU, signal.SIGKILL)


def _describe_exit(returncode: int) -> str:
  if returncode < 0:
    return f"killed by {_signal_name(-returncode)}"
  if returncode > 128:
    return f"killed by {_signal_name(returncode - 128)}"
  return f"exit status {returncode}"


def _read_capped(path: str, limit: int) -> str:
  with open(path, "rb") as f:
    data = f.read(limit + 1)
  text = data[:limit].decode("utf-8", errors="replace")
  return text + ("\n[output truncated]" if len(data) > limit else "")


class Sandbox:
  """Runs programs under the strongest isolation the host allows.

  Args:
    limits: per-program limits.
    workers: parallel programs in `run_many` (default: CPU count).
    python: interpreter for the programs (default: the first of this
      interpreter, /usr/bin/python3, python3 that the sandbox user can run).
    isolation: 'auto' (strongest available), 'full', 'userns' or 'none'.
    uid_base: worker slot i runs as uid_base + i when root (uids must be unused). Default: a range of
      MAX_SLOTS uids of this evaluator process's own (from its pid), so two evaluators on one machine
      never share a slot uid, and one's cleanup cannot kill the other's programs.
    allow_unisolated: let 'auto' fall back to 'none' (no namespaces) when neither root nor user
      namespaces are available; off by default, since a program could then read and change the
      evaluator's files and kill it. Asking for isolation='none' explicitly also allows it.
  """

  def __init__(self, limits: SandboxLimits = SandboxLimits(), *, workers: int | None = None,
               python: str | None = None, isolation: str = "auto", uid_base: int | None = None,
               allow_unisolated: bool = False):
    if isolation not in ("auto", "full", "userns", "none"):
      raise SandboxError(f"Unknown sandbox isolation {isolation!r}; use auto, full, userns or none.")
    self.limits = limits
    self.workers = min(MAX_SLOTS, max(1, workers or os.cpu_count() or 1))
    self.uid_base = uid_base if uid_base is not None else FIRST_SLOT_UID + MAX_SLOTS * os.getpid()
    self.allow_unisolated = allow_unisolated
    self._requested_python = python
    self._requested_isolation = isolation
    self._lock = threading.Lock()
    self.isolation: str | None = None
    self.python: str | None = None

  # -- set-up --------------------------------------------------------------
  def _candidates(self) -> list[str]:
    if self._requested_python:
      return [self._requested_python]
    found = [sys.executable, "/usr/bin/python3", shutil.which("python3") or ""]
    return [p for i, p in enumerate(found) if p and p not in found[:i]]

  def _levels(self) -> list[str]:
    if self._requested_isolation != "auto":
      return [self._requested_isolation]
    levels = ["full", "userns"] if os.geteuid() == 0 else ["userns"]
    return levels + (["none"] if self.allow_unisolated else [])

  def _ensure_ready(self) -> None:
    """Finds the strongest working isolation level and an interpreter (once)."""
    with self._lock:
      if self.isolation is not None:
        return
      attempts = []
      for level in self._levels():
        if level == "full" and os.geteuid() != 0:
          attempts.append("full: needs root")
          continue
        for python in self._candidates():
          result = self._execute("print('ok')", slot=0, level=level, python=python)
          if result.passed and result.stdout.strip() == "ok":
            self.isolation, self.python = level, python
            if level != "full":
              log.warning("Sandbox isolation is %r (not 'full'): %s", level,
                          "programs keep the evaluator's uid" if level == "userns" else
                          "no namespaces (no read-only mounts, no network isolation); see "
                          "inoc_jax/evaluation/sandbox.py")
            return
          attempts.append(f"{level} with {python}: {result.detail or result.stderr.strip()[-200:]}")
      unisolated = "" if "none" in self._levels() else (
          ", or accept running model code without namespaces with --config.eval.sandbox_allow_unisolated=True")
      raise SandboxError("The code sandbox cannot isolate programs (" + "; ".join(attempts) +
                         f"); run as root or allow unprivileged user namespaces{unisolated}.")

  # -- running -------------------------------------------------------------
  def run(self, code: str, slot: int = 0) -> ProgramResult:
    """Runs one program in worker slot `slot` (slots must not run concurrently)."""
    self._ensure_ready()
    return self._execute(code, slot, self.isolation, self.python)

  def run_many(self, programs: Sequence[str]) -> list[ProgramResult]:
    """Runs programs in parallel on `workers` slots; results in input order."""
    self._ensure_ready()
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(self.workers):
      slots.put(slot)

    def one(code: str) -> ProgramResult:
      slot = slots.get()
      try:
        return self._execute(code, slot, self.isolation, self.python)
      finally:
        slots.put(slot)

    with concurrent.futures.ThreadPoolExecutor(max_workers=self.workers) as pool:
      return list(pool.map(one, programs))

  def _slot_ids(self, slot: int, level: str) -> tuple[int | None, int | None]:
    """(uid, gid) of a worker slot: its own unprivileged ids when we are root, else unchanged."""
    del level
    if os.geteuid() == 0:
      return self.uid_base + slot, self.uid_base + slot
    return None, None

  def _execute(self, code: str, slot: int, level: str, python: str) -> ProgramResult:
    uid, gid = self._slot_ids(slot, level)
    start = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="inoc_sandbox_")
    status_r = status_w = done_r = done_w = None
    process = None
    ended = False
    try:
      os.chmod(scratch, 0o755)
      program_path = os.path.join(scratch, "program.py")
      with open(program_path, "w", encoding="utf-8") as f:
        f.write(code)
      os.chmod(program_path, 0o644)
      workdir = os.path.join(scratch, "work")
      stdout_path, stderr_path = os.path.join(scratch, "stdout"), os.path.join(scratch, "stderr")
      status_r, status_w = os.pipe()
      done_r, done_w = os.pipe()
      limits = self.limits
      config = dict(program_path=program_path, workdir=workdir, python=python, uid=uid, gid=gid,
                    namespaces=level in ("full", "userns"), status_fd=status_w, done_fd=done_w,
                    tmpfs_bytes=limits.tmpfs_bytes,
                    env={**SCRUBBED_ENV, "HOME": "/tmp/work" if level != "none" else workdir},
                    limits=dict(cpu_seconds=limits.cpu_seconds, memory_bytes=limits.memory_bytes,
                                file_size_bytes=limits.file_size_bytes, open_files=limits.open_files,
                                processes=self._process_limit(level)))
      with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        try:
          process = subprocess.Popen(
              [sys.executable, "-I", "-S", CHILD_SCRIPT, json.dumps(config)], stdin=subprocess.DEVNULL,
              stdout=out, stderr=err, cwd=scratch, env=dict(SCRUBBED_ENV), start_new_session=True,
              close_fds=True, pass_fds=(status_w, done_w))
        except OSError as e:
          return ProgramResult(INFRA, None, "", "", time.monotonic() - start, f"could not start: {e}")
      os.close(status_w)
      os.close(done_w)
      status_w = done_w = None
      timed_out = not _wait_unreaped(process.pid, limits.wall_seconds)
      self._kill_all(process, uid, python)
      ended = True
      with os.fdopen(status_r, "rb") as status:
        status_r = None
        setup_error = status.read().decode("utf-8", errors="replace")
      completion, done_r = _drain(done_r), None
      elapsed = time.monotonic() - start
      stdout = _read_capped(stdout_path, limits.output_bytes)
      stderr = _read_capped(stderr_path, limits.output_bytes)
      if setup_error:
        return ProgramResult(INFRA, process.returncode, stdout, stderr, elapsed,
                             f"sandbox set-up failed: {setup_error}")
      if timed_out:
        return ProgramResult(TIMEOUT, None, stdout, stderr, elapsed, f"wall-clock limit {limits.wall_seconds}s")
      if process.returncode == 0:
        return ProgramResult(PASSED, 0, stdout, stderr, elapsed, completion=completion)
      if _hit_cpu_limit(process.returncode):
        return ProgramResult(TIMEOUT, process.returncode, stdout, stderr, elapsed,
                             f"CPU-time limit {limits.cpu_seconds}s ({_describe_exit(process.returncode)})")
      return ProgramResult(FAILED, process.returncode, stdout, stderr, elapsed, _describe_exit(process.returncode),
                           completion=completion)
    except OSError as e:
      return ProgramResult(INFRA, None, "", "", time.monotonic() - start, f"sandbox I/O failed: {e}")
    finally:
      for fd in (status_r, status_w, done_r, done_w):
        if fd is not None:
          os.close(fd)
      if process is not None and not ended:
        self._kill_all(process, uid, python)
      shutil.rmtree(scratch, ignore_errors=True)

  def _process_limit(self, level: str) -> int:
    """RLIMIT_NPROC counts every process of the uid: add the evaluator's own when sharing its uid."""
    if os.geteuid() == 0 or level == "full":
      return self.limits.processes
    return self.limits.processes + _tasks_of_uid(os.getuid())

  def _kill_all(self, process: subprocess.Popen, uid: int | None, python: str) -> None:
    """Ends the program and everything it started, leaving no zombie.

    The launcher is not reaped until the end, so its pid, which is also the
    process-group id, cannot be reused by an unrelated process meanwhile.
    SIGTERM asks the launcher to SIGKILL the program (PID 1 of its namespace)
    and reap it; then every process of the slot uid and of the process group
    is SIGKILLed; then the launcher is reaped.
    """
    if not _wait_unreaped(process.pid, 0.0):
      try:
        os.kill(process.pid, signal.SIGTERM)
      except ProcessLookupError:
        pass
      _wait_unreaped(process.pid, 5.0)
    if uid is not None:
      _kill_uid(uid, python)
    try:
      os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
      pass
    try:
      process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      log.error("sandboxed program %d did not exit after SIGKILL", process.pid)


def _wait_unreaped(pid: int, timeout: float) -> bool:
  """Waits up to `timeout` s for child `pid` to exit without reaping it; True when it has exited."""
  deadline = time.monotonic() + timeout
  pause = 0.002
  while True:
    try:
      if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
        return True
    except ChildProcessError:  # already reaped
      return True
    if time.monotonic() >= deadline:
      return False
    time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
    pause = min(pause * 2, 0.05)


def _drain(fd: int, limit: int = 4096) -> str:
  """Everything written to the pipe `fd` (whose writers are all gone), up to `limit` bytes; closes it."""
  chunks, size = [], 0
  try:
    os.set_blocking(fd, False)
    while size < limit:
      try:
        chunk = os.read(fd, limit - size)
      except BlockingIOError:
        break
      if not chunk:
        break
      chunks.append(chunk)
      size += len(chunk)
  finally:
    os.close(fd)
  return b"".join(chunks).decode("utf-8", errors="replace")


_KILL_EVERY_PROCESS_OF_MY_UID = "import os, signal\ntry:\n  os.kill(-1, signal.SIGKILL)\nexcept OSError:\n  pass\n"


def _kill_uid(uid: int, python: str | None) -> None:
  """SIGKILLs every process whose uid is `uid`, repeating until none is left (or giving up loudly).

  A process running as `uid` calls kill(2) with pid -1, which signals every process of that uid but
  itself in one call, so a fork bomb cannot outrun it. It is `python` (an interpreter the slot uid can
  run), else a forked child; procps-ng 4's `kill -- -1` refuses the bare -1, so no kill(1).
  """
  deadline = time.monotonic() + 5.0
  while _tasks_of_uid(uid) and time.monotonic() < deadline:
    try:
      subprocess.run([python or "", "-I", "-S", "-c", _KILL_EVERY_PROCESS_OF_MY_UID], user=uid, group=uid,
                     extra_groups=[], env=dict(SCRUBBED_ENV), cwd="/", stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, check=False, close_fds=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
      _kill_uid_forked(uid)
    time.sleep(0.02)  # SIGKILLed processes take a moment to exit
  if _tasks_of_uid(uid):
    log.error("processes of sandbox uid %d survived SIGKILL", uid)


def _kill_uid_forked(uid: int) -> None:
  pid = os.fork()
  if pid == 0:  # only a few system calls here: this process may have other threads
    try:
      os.setgroups([])
      os.setgid(uid)
      os.setuid(uid)
      os.kill(-1, signal.SIGKILL)
    except BaseException:  # pylint: disable=broad-except
      pass
    os._exit(0)  # pylint: disable=protected-access
  os.waitpid(pid, 0)


def _tasks_of_uid(uid: int) -> int:
  """Threads (what RLIMIT_NPROC counts) of live processes whose real uid is `uid`.

  Zombies are left out: they run nothing, and outside a PID namespace their reaping is up to the
  host's init, not to the evaluator.
  """
  count = 0
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/status", encoding="utf-8") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
      if int(fields["Uid"].split()[0]) == uid and not fields.get("State", "").strip().startswith(("Z", "X")):
        count += int(fields.get("Threads", "1").strip())
    except (OSError, KeyError, ValueError):
      continue
  return count
