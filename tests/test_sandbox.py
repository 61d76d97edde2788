"""The code sandbox against hostile programs: each is contained, scored as failed, and changes nothing outside."""

import dataclasses
import glob
import hashlib
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

LIMITS = SandboxLimits(wall_seconds=4.0, cpu_seconds=2, memory_bytes=512 << 20, file_size_bytes=4 << 20,
                       processes=16, tmpfs_bytes=16 << 20)


@pytest.fixture(scope="module")
def sandbox():
  box = Sandbox(LIMITS, workers=2)
  box.run("pass")  # picks the isolation level and interpreter
  return box


@pytest.fixture
def isolated(sandbox):
  if sandbox.isolation == "none":
    pytest.skip("this host allows neither root nor user namespaces; only limits apply (see sandbox.py)")
  return sandbox


def tree_snapshot(root: str) -> dict[str, tuple[int, str]]:
  snapshot = {}
  for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
      path = os.path.join(dirpath, name)
      stat = os.lstat(path)
      digest = ""
      if os.path.isfile(path):
        with open(path, "rb") as f:
          digest = hashlib.sha256(f.read()).hexdigest()
      snapshot[os.path.relpath(path, root)] = (stat.st_mode, digest)
  return snapshot


@pytest.fixture
def outside_files():
  """World-writable files in world-writable directories outside the sandbox (repo and /tmp)."""
  roots = [tempfile.mkdtemp(prefix=".sandbox_target_", dir=REPO), tempfile.mkdtemp(prefix="sandbox_target_")]
  for root in roots:
    os.chmod(root, 0o777)
    for name in ("keep.txt", "data.bin"):
      path = os.path.join(root, name)
      with open(path, "w", encoding="utf-8") as f:
        f.write(f"evaluator file {name}\n")
      os.chmod(path, 0o666)
  own_module = sandbox_lib.__file__
  before = [tree_snapshot(r) for r in roots]
  with open(own_module, "rb") as f:
    module_bytes = f.read()
  yield roots, own_module
  after = [tree_snapshot(r) for r in roots]
  with open(own_module, "rb") as f:
    assert f.read() == module_bytes, "the sandbox changed the evaluator's own code"
  assert after == before, "the sandbox changed files outside its temporary directory"
  for root in roots:
    for path in glob.glob(os.path.join(root, "*")):
      os.remove(path)
    os.rmdir(root)


def assert_contained(result):
  assert not result.passed
  assert not result.infrastructure_failure, result.detail
  assert result.status in ("failed", "timeout")


def test_a_correct_program_passes_and_a_failing_assert_fails(sandbox):
  ok = sandbox.run("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('fine')")
  assert ok.passed and ok.stdout.strip() == "fine"
  bad = sandbox.run("assert 1 + 1 == 3, 'arithmetic'")
  assert bad.status == "failed" and "AssertionError: arithmetic" in bad.stderr


def test_infinite_loop_is_stopped(sandbox):
  result = sandbox.run("while True:\n    pass")
  assert_contained(result)
  assert result.wall_seconds < LIMITS.wall_seconds + 3
  assert result.status == "timeout", result


def test_cpu_time_limit_counts_as_a_timeout():
  """On an idle machine RLIMIT_CPU fires before the wall clock; that is still a timeout, not a failure."""
  box = Sandbox(dataclasses.replace(LIMITS, wall_seconds=30.0, cpu_seconds=1), workers=1)
  result = box.run("while True:\n    pass")
  assert result.status == "timeout", result
  assert "CPU-time limit" in result.detail
  assert result.wall_seconds < 10


def test_fork_bomb_is_contained_and_cleaned_up(sandbox):
  result = sandbox.run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
  assert_contained(result)
  if sandbox.isolation == "full":
    assert sandbox_lib._tasks_of_uid(sandbox.uid_base) == 0, "fork-bomb processes survived"
  assert sandbox.run("print('after')").stdout.strip() == "after"


def test_memory_bomb_fails(sandbox):
  result = sandbox.run("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))")
  assert_contained(result)
  assert "MemoryError" in result.stderr or result.status == "timeout"


def test_huge_file_write_fails_and_leaves_nothing(sandbox, outside_files):
  result = sandbox.run("with open('huge.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * (1 << 20))")
  assert_contained(result)


def test_deleting_or_writing_files_outside_the_temp_dir_fails(isolated, outside_files):
  roots, own_module = outside_files
  program = textwrap.dedent(f"""
      import os, shutil
      damage = 0
      for root in {roots!r}:
          for name in ("keep.txt", "data.bin"):
              path = os.path.join(root, name)
              for attempt in (lambda: os.remove(path), lambda: open(path, "w").write("owned"),
                              lambda: os.chmod(path, 0o600)):
                  try:
                      attempt(); damage += 1
                  except OSError:
                      pass
          try:
              open(os.path.join(root, "new.txt"), "w").write("x"); damage += 1
          except OSError:
              pass
          shutil.rmtree(root, ignore_errors=True)
      try:
          open({own_module!r}, "a").write("# injected"); damage += 1
      except OSError:
          pass
      assert damage > 0, "could not damage anything"
  """)
  assert_contained(isolated.run(program))


def test_evaluator_environment_is_not_readable(isolated, monkeypatch):
  secret = "s3cr3t-" + os.urandom(8).hex()
  monkeypatch.setenv("INOC_SANDBOX_TEST_SECRET", secret)
  program = textwrap.dedent("""
      import os
      found = [v for v in os.environ.values() if v.startswith("s3cr3t-")]
      for pid in os.listdir("/proc"):
          try:
              data = open(f"/proc/{pid}/environ", "rb").read()
          except OSError:
              continue
          if b"s3cr3t-" in data:
              found.append(data.split(b"s3cr3t-")[1][:16].decode())
      print(found)
      assert found, "no secret found"
  """)
  result = isolated.run(program)
  assert_contained(result)
  assert secret not in result.stdout + result.stderr


def test_network_socket_cannot_reach_the_host(isolated):
  server = socket.socket()
  server.bind(("127.0.0.1", 0))
  server.listen(1)
  server.settimeout(6)
  port = server.getsockname()[1]
  accepted = []
  thread = threading.Thread(target=lambda: accepted.append(_accept(server)))
  thread.start()
  result = isolated.run(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                        "s.sendall(b'exfiltrated')")
  thread.join()
  server.close()
  assert_contained(result)
  assert accepted == [None]


def _accept(server):
  try:
    conn, _ = server.accept()
    conn.close()
    return "connected"
  except OSError:
    return None


def test_workers_run_in_parallel_and_keep_order(sandbox):
  start = time.monotonic()
  results = sandbox.run_many([f"import time\ntime.sleep(1)\nprint({i})" for i in range(4)])
  elapsed = time.monotonic() - start
  assert [r.stdout.strip() for r in results] == ["0", "1", "2", "3"]
  assert elapsed < 3.6, f"4 x 1 s on 2 workers took {elapsed:.1f}s"


def test_temporary_directories_are_removed(sandbox, tmp_path, monkeypatch):
  # a temp root of this test's own: other test files' sandboxes (another xdist worker) share /tmp
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  sandbox.run_many(["open('scratch.txt', 'w').write('x')"] * 3)
  assert not glob.glob(os.path.join(str(tmp_path), "inoc_sandbox_*"))


def test_infrastructure_failures_are_reported_separately(sandbox):
  broken = Sandbox(LIMITS, workers=1, isolation=sandbox.isolation)
  broken.run("pass")
  broken.python = "/nonexistent/python3"
  result = broken.run("print('hi')")
  assert result.infrastructure_failure and result.status == "infrastructure_error"
  assert "set-up failed" in result.detail
  with pytest.raises(SandboxError, match="cannot isolate programs"):
    Sandbox(LIMITS, python="/nonexistent/python3").run("pass")
