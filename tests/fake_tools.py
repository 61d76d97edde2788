"""Fake `gcloud`, `srun`, `sbatch` and `python` executables that record how the launch scripts call them.

Every call appends one JSON line to $FAKE_LOG: {"tool", "args", "env"} (env: the INOC_* and
a few named variables). Replies are scripted per call kind in $FAKE_REPLIES (a JSON object
kind -> list of {"stdout", "rc"}, consumed in order; the last one repeats), where the kind
is e.g. 'tpu-vm describe', 'queued-resources describe', 'ssh-status', 'storage ls', optionally
followed by the VM name ('tpu-vm describe vm-0') to script one VM of several.
With FAKE_EXEC_SSH=1 a `tpu-vm ssh --command=X` runs X with bash here (one local "worker");
with FAKE_EXEC_SRUN=1 `srun` runs its command after the options.
"""

from __future__ import annotations

import json
import os
import stat
import textwrap

FAKE = textwrap.dedent(r'''
    #!__PYTHON__
    import json, os, subprocess, sys

    tool = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    recorded_env = {k: v for k, v in os.environ.items()
                    if k.startswith(("INOC_", "SLURM_", "XLA_", "FOO")) and not k.startswith("INOC_FAKE")}
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps({"tool": tool, "args": args, "env": recorded_env}) + "\n")

    def kind():
        words = [a for a in args if not a.startswith("-")]
        if tool != "gcloud":
            return tool
        if "ssh" in words:
            command = next((a.split("=", 1)[1] for a in args if a.startswith("--command=")), "")
            return "ssh-status" if ".exit" in command and "--worker=0" in args else "ssh"
        if words[:2] == ["storage", "ls"]:
            return "storage ls"
        for group in ("tpu-vm", "queued-resources"):
            if group in words:
                return f"{group} {words[words.index(group) + 1]}"
        return " ".join(words[:2])

    def reply():
        """The next scripted answer for '<kind> <name>' (e.g. 'tpu-vm describe vm-0'), else '<kind>'."""
        replies_path = os.environ.get("FAKE_REPLIES")
        if not replies_path or not os.path.exists(replies_path):
            return {}
        with open(replies_path) as f:
            replies = json.load(f)
        words = [a for a in args if not a.startswith("-")]
        named = f"{kind()} {words[4]}" if tool == "gcloud" and len(words) > 4 else None
        key = named if named in replies else kind()
        queue = replies.get(key)
        if not queue:
            return {}
        counter_path = f"{replies_path}.{key.replace(' ', '_').replace('/', '_')}.count"
        used = int(open(counter_path).read()) if os.path.exists(counter_path) else 0
        with open(counter_path, "w") as f:
            f.write(str(used + 1))
        return queue[min(used, len(queue) - 1)]

    if tool == "curl":  # no metadata server here
        sys.exit(7)
    if tool == "gcloud" and "ssh" in args and os.environ.get("FAKE_EXEC_SSH") == "1":
        command = next(a.split("=", 1)[1] for a in args if a.startswith("--command="))
        sys.exit(subprocess.call(["bash", "-c", command]))
    if tool == "srun" and os.environ.get("FAKE_EXEC_SRUN") == "1":
        rest = args[:]
        while rest and rest[0].startswith("-"):
            rest.pop(0)
        sys.exit(subprocess.call(rest))
    if tool == "gcloud" and "scp" in args and os.environ.get("FAKE_SCP_DIR"):
        source = [a for a in args if not a.startswith("-") and os.path.exists(a)][0]
        subprocess.check_call(["cp", source, os.environ["FAKE_SCP_DIR"]])
    if tool == "python" and os.environ.get("FAKE_PYTHON_SLEEP"):
        import time
        time.sleep(float(os.environ["FAKE_PYTHON_SLEEP"]))
    answer = reply()
    sys.stdout.write(answer.get("stdout", ""))
    sys.exit(answer.get("rc", 0))
''').lstrip()


def install(bin_dir, python: str, tools=("gcloud", "srun", "sbatch", "python", "curl")) -> None:
  """Writes the fake tools into bin_dir (put it first on PATH)."""
  os.makedirs(bin_dir, exist_ok=True)
  for name in tools:
    path = os.path.join(bin_dir, name)
    with open(path, "w") as f:
      f.write(FAKE.replace("__PYTHON__", python))
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


def calls(log_path) -> list[dict]:
  if not os.path.exists(log_path):
    return []
  with open(log_path) as f:
    return [json.loads(line) for line in f]


def summary(call: dict) -> str:
  """'gcloud tpu-vm create', 'gcloud ssh --worker=all', 'sbatch', ... for sequence checks."""
  args = call["args"]
  if call["tool"] != "gcloud":
    return call["tool"]
  words = [a for a in args if not a.startswith("-")]
  if "ssh" in words:
    worker = next(a for a in args if a.startswith("--worker="))
    return f"gcloud ssh {worker}"
  if words[:2] == ["storage", "ls"]:
    return "gcloud storage ls"
  for group in ("tpu-vm", "queued-resources"):
    if group in words:
      return f"gcloud {group} {words[words.index(group) + 1]}"
  return "gcloud " + " ".join(words[:2])
