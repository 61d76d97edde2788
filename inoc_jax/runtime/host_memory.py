"""Host allocator settings for XLA:CPU: keep the memory a step frees for the next step.

XLA:CPU asks for one temporary buffer per execution of a compiled program (for
SmolLM2-135M's LoRA step at 8 x 256 tokens, 6.2 GB) and frees it at the end.
glibc serves a request that large with a fresh `mmap` and returns it with
`munmap`, so every step the kernel maps and zeroes 1.6 million pages again:
3-4.5 CPU-seconds of page faults per ~13 s step on the 2-core development CPU
(BUILD_NOTES "Performance"). Told to use one arena, never to `mmap` and never
to trim, glibc keeps the freed buffer in its heap and the next step reuses it
without a fault.

It is opt-in (INOC_JAX_HOST_MALLOC=keep), because it can cost memory: the
process keeps its peak heap until it exits, and when glibc splits a freed step
buffer to serve small requests the next step's buffer no longer fits the hole
and the heap grows by a whole buffer. Measured on SmolLM2-135M at 8 x 256:
LoRA 10.7-11.4 -> 7.1-8.8 s per step, but in 1 of 5 processes the peak went
from 8.3 to 13.8 GiB (a small-block pool below the heap's top made it rarer,
not impossible). It applies only when JAX runs on the CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger("inoc_jax")

# mallopt parameter numbers (glibc malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_NEVER_TRIM = -1  # mallopt's int is stored as size_t: -1 becomes SIZE_MAX, a threshold never reached


_SMALL_BLOCK_POOL = 256 << 20
_pool_barrier = None  # the live chunk that keeps the pool out of the heap's top; never freed


def _reserve_small_block_pool(libc) -> None:
  """Leaves a free 256 MiB chunk below a live one, for the small allocations made between steps.

  glibc serves a small request that has no exact fit from the smallest free chunk
  that holds it. Without this pool that is often the big buffer the last step
  freed; once split, the buffer no longer fits the next step's request and the
  heap grows by a whole buffer (measured: 7.4 -> 12.9 GiB peak in one of four runs).
  With the pool below it, small requests are carved from the pool instead.
  """
  global _pool_barrier
  if _pool_barrier is not None:
    return
  libc.malloc.argtypes, libc.malloc.restype = (ctypes.c_size_t,), ctypes.c_void_p
  libc.free.argtypes, libc.free.restype = (ctypes.c_void_p,), None
  pool = libc.malloc(_SMALL_BLOCK_POOL)
  _pool_barrier = libc.malloc(64)
  libc.free(pool)


def jax_runs_on_cpu() -> bool:
  """Whether this process's JAX backend will be the CPU, decided without starting a backend."""
  platforms = os.environ.get("JAX_PLATFORMS") or os.environ.get("JAX_PLATFORM_NAME") or ""
  jax = sys.modules.get("jax")
  if jax is not None and getattr(jax.config, "jax_platforms", None):
    platforms = jax.config.jax_platforms
  if platforms:
    return platforms.split(",")[0].strip().lower() == "cpu"
  from inoc_jax.runtime.distributed import tpu_chips_present  # pylint: disable=g-import-not-at-top
  return not (tpu_chips_present() or os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/kfd"))


def keep_freed_host_memory() -> bool:
  """Sets glibc to reuse freed memory (see the module docstring); True if it did.

  Call before the JAX backend starts (its threads pick their malloc arena on
  their first allocation). A no-op off glibc, off the CPU backend, or with
  INOC_JAX_HOST_MALLOC unset or not `keep`.
  """
  if os.environ.get("INOC_JAX_HOST_MALLOC", "").lower() != "keep" or not sys.platform.startswith("linux"):
    return False
  if not jax_runs_on_cpu():
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):  # musl and other libcs have no mallopt
    return False
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  done = all(mallopt(param, value) == 1 for param, value in
             ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM)))
  if done:
    _reserve_small_block_pool(libc)
    log.info("host allocator: one arena, no mmap, no trim (INOC_JAX_HOST_MALLOC=keep)")
  return done
