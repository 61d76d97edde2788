"""Where a compiled step spends its time: a `jax.profiler` trace summed per XLA op.

    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      run the step a few times
    print(summarize(trace_dir, compiled.as_text(), steps=3))

Each XLA:CPU/GPU thunk appears in the trace as an event named after its HLO
instruction (`ynn_fusion.3`, `fusion.12`, `dot.4`, ...). The summary adds
them up per instruction, names the JAX source op behind each (the HLO
`op_name` metadata, e.g. `jvp(...)/dot_general`), and groups them into kinds
(matmul, elementwise fusion, copy/transpose, reduction, other).
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re

# Runtime bookkeeping events, not ops.
_RUNTIME_EVENTS = re.compile(r"^(\$|end: |PjitFunction|CommonPjRt|ThunkExecutor|ThreadpoolListener|SlinkyThreadPool|"
                             r"Handle |Wait for|Allocate|ParseArg|PythonRefManager|np\.asarray)")


def _kind(name: str, source: str) -> str:
  text = f"{name} {source}"
  if "dot" in text or "ynn" in name or "gemm" in name or "conv" in text:
    return "matmul"
  if name.startswith(("copy", "transpose")) or "transpose" in source:
    return "copy/transpose"
  if "reduce" in text:
    return "reduction"
  if "fusion" in name or name.startswith("wrapped_"):
    return "elementwise fusion"
  return "other"


def op_sources(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> its `op_name` metadata (the JAX op that produced it)."""
  sources = {}
  for line in hlo_text.splitlines():
    match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name=\"([^\"]+)\"", line)
    if match:
      sources.setdefault(match.group(1), match.group(2))
  return sources


def op_times(trace_dir: str) -> dict[str, float]:
  """Total microseconds per device op in the newest trace under `trace_dir` (summed over threads)."""
  paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True), key=os.path.getmtime)
  if not paths:
    raise FileNotFoundError(f"no *.trace.json.gz under {trace_dir}; trace with create_perfetto_trace=True")
  with gzip.open(paths[-1], "rt") as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
  totals: dict[str, float] = collections.defaultdict(float)
  for event in events:
    thread = threads.get((event.get("pid"), event.get("tid")), "")
    if (event.get("ph") == "X" and thread != "python" and not thread.startswith("python")
        and not _RUNTIME_EVENTS.match(event.get("name", ""))):
      totals[event["name"]] += float(event.get("dur", 0.0))
  return dict(totals)


def summarize(trace_dir: str, hlo_text: str = "", steps: int = 1, top: int = 15) -> str:
  """Markdown: time per step by kind, then the `top` ops with their JAX source."""
  times = op_times(trace_dir)
  sources = op_sources(hlo_text) if hlo_text else {}
  total = sum(times.values()) or 1.0
  by_kind: dict[str, float] = collections.defaultdict(float)
  for name, micros in times.items():
    by_kind[_kind(name, sources.get(name, ""))] += micros
  lines = [f"op time per step: {total / steps / 1e3:.1f} ms over {len(times)} ops (summed over the threads that ran "
           "them, so it can exceed the wall time)", "",
           "| kind | ms / step | share |", "|---|---|---|"]
  for kind, micros in sorted(by_kind.items(), key=lambda kv: -kv[1]):
    lines.append(f"| {kind} | {micros / steps / 1e3:.1f} | {micros / total:.0%} |")
  lines += ["", "| op | ms / step | share | JAX source |", "|---|---|---|---|"]
  for name, micros in sorted(times.items(), key=lambda kv: -kv[1])[:top]:
    source = sources.get(name, "")
    source = source if len(source) < 90 else "..." + source[-87:]
    lines.append(f"| {name} | {micros / steps / 1e3:.1f} | {micros / total:.1%} | {source} |")
  return "\n".join(lines)
