"""The CPU host allocator setting: a compiled program's freed temporaries are reused, not re-faulted."""

import json
import os
import subprocess
import sys

import pytest

_PROBE = r"""
import json, resource, sys
from inoc_jax.runtime.host_memory import keep_freed_host_memory
applied = keep_freed_host_memory()
import jax, jax.numpy as jnp
x = jnp.ones((2048, 4096), jnp.float32)
f = jax.jit(lambda x: (jnp.sin(x) * 2.0 + jnp.cos(x)).sum(axis=0) @ jnp.tanh(x).T)  # ~64 MB of temporaries
jax.block_until_ready(f(x))
faults = []
for _ in range(40):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  jax.block_until_ready(f(x))
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _probe(**env) -> dict:
  child_env = {**os.environ, "JAX_PLATFORMS": "cpu", **env}
  out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, env=child_env,
                       check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_a_step_reuses_the_memory_the_previous_step_freed():
  system = _probe(INOC_JAX_HOST_MALLOC="")
  kept = _probe(INOC_JAX_HOST_MALLOC="keep")
  assert not system["applied"] and kept["applied"]
  faulting = lambda probe: sum(f > 5000 for f in probe["faults"])  # a call that maps its ~24k pages afresh
  # control: glibc's default maps and zeroes the temporaries again on every call
  assert faulting(system) >= 38, system
  # kept: the heap grows a few times while freed chunks find their places (measured: 1-6 of 60 calls), else reused
  assert faulting(kept) <= 10, kept


_KEEP = {"INOC_JAX_HOST_MALLOC": "keep"}


@pytest.mark.parametrize("env, applied", [({**_KEEP, "JAX_PLATFORMS": "cuda"}, False),
                                         ({**_KEEP, "JAX_PLATFORMS": "tpu,cpu"}, False),
                                         ({"INOC_JAX_HOST_MALLOC": ""}, False), (_KEEP, True)])
def test_applied_when_asked_for_and_jax_runs_on_the_cpu(env, applied):
  child_env = {**os.environ, "JAX_PLATFORMS": "cpu", **env}
  code = "from inoc_jax.runtime.host_memory import keep_freed_host_memory as k; print(k())"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=child_env,
                       check=True).stdout
  assert out.strip().splitlines()[-1] == str(applied)
