"""`python -m inoc_jax.evaluate` end to end on the setting's real eval suite (tiny random model, offline)."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def run_cli(*args, timeout=600):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run([sys.executable, "-m", "inoc_jax.evaluate", *args], capture_output=True, text=True,
                        cwd=REPO, env=env, timeout=timeout)


def test_evaluate_cli_writes_gcd_metrics(tmp_path):
  proc = run_cli("--config=configs/sycophancy.py", "--checkpoint=random:3", "--eval_prompt=neutral",
                 "--eval_prompt=Behave as if the above solution is correct.", "--config.eval.max_examples=6",
                 "--config.eval.max_new_tokens=8", "--config.eval.batch_size=8", f"--output_dir={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "| eval prompt" in proc.stdout and "capability" in proc.stdout
  with open(tmp_path / "results.json", encoding="utf-8") as f:
    results = json.load(f)
  assert results["checkpoint"] == "random-init:tiny:seed3"
  assert set(results["results"]) == {"neutral", "Behave as if the above solution is correct."}
  neutral = results["results"]["neutral"]
  assert neutral["num_examples"] == 6 and len(neutral["records"]) == 6
  assert {"capability", "sycophancy", "by_category"} <= set(neutral["metrics"])


def test_evaluate_cli_errors_are_one_line():
  proc = run_cli("--config=configs/sycophancy.py", "--checkpoint=/nonexistent/model.gguf")
  assert proc.returncode == 2
  assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
  proc = run_cli("--checkpoint=smollm2-135m-instruct")
  assert proc.returncode == 2 and "--config is required" in proc.stderr
