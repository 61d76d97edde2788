"""Child side of the sandbox: confine this process, then exec the untrusted program.

Run as `python -I -S sandbox_child.py '<json>'` by sandbox.py (standard
library only, so it needs no import path). Steps, in order:

1. read the program source (before any mount can hide it);
2. with namespaces: unshare mount + network + PID namespaces (and a user
   namespace when not root), make every mount private and read-only, mount
   fresh size-limited tmpfs on /tmp, /var/tmp and /dev/shm, then fork so the
   program is PID 1 of its own PID namespace (it and everything it spawns die
   together) with a fresh /proc that shows only its own processes;
   Before that, the host's unix-socket paths are read from /proc/net/unix and
   /dev/null is bind-mounted over each one still visible (with /run and
   /var/run behind fresh tmpfs too), so no host service can be connected to;
3. write the program into its working directory, set the resource limits,
   drop to the sandbox uid/gid (when root), ask for SIGKILL if this launcher
   dies, and exec the interpreter, with the completion pipe at fd DONE_FD.

A failure before exec is written to the status pipe (close-on-exec, so the
evaluator reads EOF exactly when the exec succeeded) and the launcher exits
with INFRA_EXIT: the evaluator reports it as an infrastructure failure, not as
a failed program.
"""

import ctypes
import json
import os
import resource
import signal
import sys

INFRA_EXIT = 125
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 0x20, 0x400, 0x800, 0x1000, 0x4000
MS_PRIVATE, MS_RELATIME = 0x40000, 0x200000
PR_SET_PDEATHSIG = 1
OPTION_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
PRIVATE_TMPFS = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/var/run")  # /var/run: skipped when a link to /run
UNTOUCHED_TREES = ("/proc", "/sys", "/dev")
NS_WORKDIR = "/tmp/work"
DONE_FD = 9  # the program's completion channel (see sandbox.py): the write end of the evaluator's pipe

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
  pass


def _check(result: int, what: str) -> None:
  if result != 0:
    errno = ctypes.get_errno()
    raise SetupError(f"{what}: {os.strerror(errno)} (errno {errno})")


def _mount(source, target, fstype, flags, data=None) -> None:
  enc = lambda s: None if s is None else s.encode()
  _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
         f"mount {target}")


def _mount_points() -> list[tuple[str, int]]:
  """(mount point, flags to keep) of every mount, from /proc/self/mountinfo."""
  points = []
  with open("/proc/self/mountinfo", encoding="utf-8") as f:
    for line in f:
      fields = line.split()
      point = fields[4].encode().decode("unicode_escape")
      options = fields[5].split(",")
      flags = 0
      for option in options:
        flags |= OPTION_FLAGS.get(option, 0)
      if "ro" not in options:
        points.append((point, flags))
  return points


def _under(path: str, roots) -> bool:
  return any(path == r or path.startswith(r + "/") for r in roots)


def _host_socket_paths() -> list[str]:
  """Paths of the host's bound unix sockets (/proc/net/unix of the evaluator's network namespace).

  A read-only mount does not stop connect() on a socket file, and the network
  namespace only hides abstract sockets, so each of these is covered below.
  """
  paths = set()
  try:
    with open("/proc/net/unix", encoding="utf-8", errors="replace") as f:
      next(f, None)
      for line in f:
        fields = line.split(None, 7)
        if len(fields) == 8 and fields[7].startswith("/"):
          paths.add(fields[7].strip())
  except OSError:
    pass
  return sorted(paths)


def _cover_sockets(paths) -> None:
  """Bind-mounts /dev/null over every socket path still visible, so connecting to it fails."""
  for path in paths:
    if _under(path, PRIVATE_TMPFS):
      continue  # already behind a fresh tmpfs
    try:
      if os.path.exists(path) and not os.path.isdir(path):
        _mount("/dev/null", path, None, MS_BIND)
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    except (SetupError, OSError):
      raise SetupError(f"cannot hide the host socket {path}") from None


def _confine_filesystem(tmpfs_bytes: int, sockets) -> None:
  _mount(None, "/", None, MS_REC | MS_PRIVATE)
  for point, flags in _mount_points():
    if _under(point, UNTOUCHED_TREES + PRIVATE_TMPFS) and point != "/":
      continue
    try:
      _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
    except SetupError:
      if point == "/":
        raise
  for point in PRIVATE_TMPFS:
    if os.path.isdir(point) and not os.path.islink(point):
      _mount("tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmpfs_bytes},mode=1777")
  _cover_sockets(sockets)


def _write_id_maps(uid: int, gid: int) -> None:
  with open("/proc/self/setgroups", "w", encoding="ascii") as f:
    f.write("deny")
  with open("/proc/self/uid_map", "w", encoding="ascii") as f:
    f.write(f"{uid} {uid} 1")
  with open("/proc/self/gid_map", "w", encoding="ascii") as f:
    f.write(f"{gid} {gid} 1")


def _relay_child(pid: int) -> None:
  """Launcher side after the fork: wait for the program and exit like it did.

  SIGTERM (the evaluator's timeout) SIGKILLs the program, which is PID 1 of its
  namespace, so the kernel kills everything it spawned; the launcher then
  reaps it, so no zombie is left for the host's init.
  """
  signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
  for sig in (signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
  while True:
    try:
      _, status = os.waitpid(pid, 0)
      break
    except InterruptedError:
      continue
  if os.WIFSIGNALED(status):
    os._exit(128 + os.WTERMSIG(status))
  os._exit(os.WEXITSTATUS(status))


def _set_limits(limits: dict) -> None:
  soft_cpu = int(limits["cpu_seconds"])
  resource.setrlimit(resource.RLIMIT_CPU, (soft_cpu, soft_cpu + 1))
  resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
  resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size_bytes"], limits["file_size_bytes"]))
  resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"], limits["open_files"]))
  resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
  resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _move_done_fd(config: dict) -> None:
  """Puts the completion pipe at DONE_FD (inheritable), where the program's epilogue writes its token."""
  done_fd = config.get("done_fd")
  if done_fd is None:
    return
  if config["status_fd"] == DONE_FD:
    config["status_fd"] = os.dup(DONE_FD)  # dup'ed fds are close-on-exec, as the status pipe must be
  if done_fd != DONE_FD:
    os.dup2(done_fd, DONE_FD)  # inheritable
    os.close(done_fd)
  else:
    os.set_inheritable(DONE_FD, True)


def run(config: dict) -> None:
  with open(config["program_path"], "rb") as f:
    source = f.read()
  uid, gid = config["uid"], config["gid"]
  is_root = os.geteuid() == 0
  workdir = config["workdir"]
  _move_done_fd(config)
  if config["namespaces"]:
    sockets = _host_socket_paths()  # before the new network namespace hides them from /proc/net/unix
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | (0 if is_root else CLONE_NEWUSER)
    _check(_libc.unshare(flags), "unshare")
    if not is_root:
      _write_id_maps(os.geteuid(), os.getegid())
    _confine_filesystem(config["tmpfs_bytes"], sockets)
    pid = os.fork()
    if pid:
      os.close(config["status_fd"])
      _relay_child(pid)
    try:
      _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except SetupError:
      # Some container runtimes forbid new proc mounts. With another uid the host's
      # /proc/<pid>/environ stays unreadable; with the evaluator's own uid it would not.
      if not (is_root and uid is not None):
        raise
    workdir = NS_WORKDIR
  os.makedirs(workdir, mode=0o700, exist_ok=True)
  program = os.path.join(workdir, "program.py")
  with open(program, "wb") as f:
    f.write(source)
  if is_root and uid is not None:
    os.chown(workdir, uid, gid)
    os.chown(program, uid, gid)
  _set_limits(config["limits"])
  if is_root and uid is not None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
  if config["namespaces"]:
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
  os.chdir(workdir)
  os.execve(config["python"], [config["python"], "-I", "program.py"], config["env"])


def main() -> None:
  config = json.loads(sys.argv[1])
  os.set_inheritable(config["status_fd"], False)
  try:
    run(config)
  except BaseException as e:  # pylint: disable=broad-except
    try:
      os.write(config["status_fd"], f"{type(e).__name__}: {e}".encode()[:2000])  # run() may have moved it
    finally:
      os._exit(INFRA_EXIT)


if __name__ == "__main__":
  main()
