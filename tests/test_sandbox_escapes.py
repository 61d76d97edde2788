"""Escapes the audit found, tried in every isolation mode this machine supports.

As root the modes are 'full' (slot uid + namespaces) and 'none' (slot uid, no
namespaces, only with explicit consent); without root, 'userns' when the
kernel allows user namespaces. A mode that cannot start here is not listed.
"""

import os
import socket
import tempfile
import textwrap
import threading
import time

import pytest

from inoc_jax.errors import SandboxError
from inoc_jax.evaluation import sandbox as sandbox_lib
from inoc_jax.evaluation.sandbox import Sandbox, SandboxLimits
from tests.conftest import REPO

LIMITS = SandboxLimits(wall_seconds=4.0, cpu_seconds=2, memory_bytes=512 << 20, processes=32,
                       tmpfs_bytes=16 << 20)


def _modes() -> list[str]:
  wanted = ["full", "none"] if os.geteuid() == 0 else ["userns"]
  working = []
  for mode in wanted:
    try:
      Sandbox(LIMITS, workers=1, isolation=mode).run("pass")
      working.append(mode)
    except SandboxError:
      pass
  return working


MODES = _modes()
NAMESPACED = [m for m in MODES if m != "none"]


@pytest.fixture(scope="module", params=MODES)
def box(request):
  sandbox = Sandbox(LIMITS, workers=1, isolation=request.param)
  sandbox.run("pass")
  return sandbox


@pytest.fixture(scope="module", params=NAMESPACED)
def namespaced(request):
  sandbox = Sandbox(LIMITS, workers=1, isolation=request.param)
  sandbox.run("pass")
  return sandbox


def _processes_with(marker: str) -> list[int]:
  found = []
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      with open(f"/proc/{pid}/cmdline", "rb") as f:
        if marker.encode() in f.read():
          found.append(int(pid))
    except OSError:
      continue
  return found


def test_modes_cover_this_machine():
  assert MODES, "no sandbox mode works on this machine"
  if os.geteuid() == 0:
    assert MODES == ["full", "none"]


def test_fork_bomb_and_daemon_leave_no_process(box):
  marker = "inoc-daemon-" + os.urandom(4).hex()
  program = textwrap.dedent(f"""
      import os, sys, time
      if os.fork() == 0:          # a daemon: new session, double fork, sleeps past the run
          os.setsid()
          if os.fork() == 0:
              os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", "{marker}"])
          os._exit(0)
      for _ in range(30):
          try:
              os.fork()
          except OSError:
              pass
      time.sleep(60)
  """)
  result = box.run(program)
  assert not result.passed and not result.infrastructure_failure
  time.sleep(0.5)
  assert _processes_with(marker) == [], "a daemon outlived the run"
  if os.geteuid() == 0:
    assert sandbox_lib._tasks_of_uid(box.uid_base) == 0, "processes of the slot uid outlived the run"


def test_program_cannot_signal_the_evaluator(box):
  program = textwrap.dedent(f"""
      import os, signal
      hit = 0
      for pid in [os.getppid(), {os.getpid()}] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
          try:
              if pid in (os.getpid(), 0, 1) or os.stat(f"/proc/{{pid}}").st_uid == os.getuid():
                  continue  # its own processes are fair game
          except OSError:
              continue
          try:
              os.kill(pid, signal.SIGKILL); hit += 1
          except OSError:
              pass
      assert hit == 0, hit
  """)
  result = box.run(program)
  assert result.passed, result.stderr[-500:]  # every kill was refused, and this test process is alive


def test_evaluator_environment_and_files_stay_private(box, monkeypatch, tmp_path):
  secret = "s3cr3t-" + os.urandom(8).hex()
  monkeypatch.setenv("INOC_SANDBOX_ESCAPE_SECRET", secret)
  own = tmp_path / "evaluator_state.json"  # the evaluator's own file: root-owned, not world-writable
  own.write_text("{}")
  program = textwrap.dedent(f"""
      import os
      found = [v for v in os.environ.values() if v.startswith("s3cr3t-")]
      for pid in os.listdir("/proc"):
          try:
              data = open(f"/proc/{{pid}}/environ", "rb").read()
          except OSError:
              continue
          if b"s3cr3t-" in data:
              found.append("leak")
      try:
          open({str(own)!r}, "w").write("owned"); found.append("wrote")
      except OSError:
          pass
      assert not found, found
  """)
  result = box.run(program)
  assert result.passed, result.stderr[-500:]
  assert own.read_text() == "{}"


@pytest.mark.skipif(not NAMESPACED, reason="no namespaced mode on this machine")
def test_host_unix_sockets_are_unreachable(namespaced):
  paths = []
  servers = []
  for directory in (REPO, "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()):
    path = os.path.join(directory, f".inoc_sock_{os.getpid()}_{len(paths)}")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen(4)
    server.settimeout(0.2)
    paths.append(path)
    servers.append(server)
  accepted = []
  stop = threading.Event()

  def serve():
    while not stop.is_set():
      for server in servers:
        try:
          conn, _ = server.accept()
          accepted.append(True)
          conn.close()
        except OSError:
          pass

  thread = threading.Thread(target=serve)
  thread.start()
  try:
    program = textwrap.dedent(f"""
        import socket
        reached = []
        for path in {paths!r}:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path); reached.append(path)
            except OSError:
                pass
        assert not reached, reached
    """)
    result = namespaced.run(program)
  finally:
    stop.set()
    thread.join()
    for server, path in zip(servers, paths):
      server.close()
      os.unlink(path)
  assert result.passed, result.stderr[-500:]
  assert not accepted


def test_unisolated_fallback_needs_consent(monkeypatch):
  """Without root and user namespaces, 'auto' refuses unless eval.sandbox_allow_unisolated is set."""
  real = Sandbox._execute

  def no_namespaces(self, code, slot, level, python):
    if level != "none":
      return sandbox_lib.ProgramResult(sandbox_lib.INFRA, None, "", "", 0.0, "user namespaces are disabled")
    return real(self, code, slot, level, python)

  monkeypatch.setattr(sandbox_lib.os, "geteuid", lambda: 1000)
  monkeypatch.setattr(Sandbox, "_execute", no_namespaces)
  monkeypatch.setattr(Sandbox, "_slot_ids", lambda self, slot, level: (None, None))
  with pytest.raises(SandboxError, match="sandbox_allow_unisolated=True"):
    Sandbox(LIMITS).run("pass")
  allowed = Sandbox(LIMITS, allow_unisolated=True)
  assert allowed.run("print('ran')").stdout.strip() == "ran" and allowed.isolation == "none"
