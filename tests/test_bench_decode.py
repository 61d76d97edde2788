"""The decode benchmark runs end to end (tiny HF fixture model) and prints its table."""

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


@pytest.mark.skipif(not HAVE_TORCH, reason="the benchmark compares with HF generate, which needs torch")
def test_decode_benchmark_prints_a_table_with_hf_beside_ours():
  proc = subprocess.run([sys.executable, "bench/decode.py", "--model=tests/fixtures/sampler/llama",
                         "--preset=tiny-llama", "--batches=1,2", "--prompt_len=8", "--new_tokens=4", "--repeats=1",
                         "--processes=1", "--allow_noisy"],
                        capture_output=True, text=True, cwd=REPO, timeout=600,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [line for line in proc.stdout.splitlines() if line.startswith("| tests/fixtures/sampler/llama")]
  assert len(rows) == 2
  for row in rows:
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[5]) > 0 and float(cells[6]) > 0   # ours and HF tokens/s
    assert cells[-2] == "1.00" and cells[-1] == "1"       # identical greedy rows; one process per side
