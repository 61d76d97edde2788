"""The benchmark scripts run end to end on tiny models and print well-formed tables; the FLOP count is right."""

import importlib.util
import os
import subprocess
import sys

import pytest

from bench import common, flops
from inoc_jax.model.config import get_preset
from inoc_jax.model.lora import LoraConfig
from tests.conftest import REPO

HAVE_HF = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft"))
HF_FIXTURE = "tests/fixtures/sampler/llama"


def run_bench(*argv: str, timeout: int = 900) -> str:
  proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO, timeout=timeout,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return proc.stdout


def test_train_flops_match_a_hand_count_of_the_tiny_llama():
  cfg = get_preset("tiny")  # d=64, L=2, heads 4/2 x 16, mlp 128, vocab 512, tied
  per_layer = 64 * 16 * 4 + 64 * 16 * 2 * 2 + 4 * 16 * 64 + 3 * 64 * 128  # q, k+v, o, gate+up+down
  n_mm = 2 * per_layer + 512 * 64                                            # + tied head
  assert flops.matmul_params(cfg) == n_mm == 2 * 36864 + 32768
  seq = 32
  attention = 2 * (2 * seq * 4 * 16) * 2                                     # (QK^T + PV) x layers, forward
  assert flops.attention_forward_flops(cfg, seq) == attention
  assert flops.train_flops_per_token(cfg, seq) == 6 * n_mm + 3 * attention
  lora = LoraConfig(rank=8)
  adapters = 2 * 8 * ((64 + 64) + (64 + 32) * 2 + (64 + 64) + (64 + 128) * 2 + (128 + 64))
  assert flops.train_flops_per_token(cfg, seq, lora) == 4 * n_mm + 6 * adapters + 3 * attention
  assert flops.forward_flops_per_token(cfg, seq) == 2 * n_mm + attention


def test_smollm2_flops_agree_with_the_published_parameter_count():
  cfg = get_preset("smollm2-135m")
  norms = (2 * cfg.num_layers + 1) * cfg.d_model
  assert flops.matmul_params(cfg) + norms == 134_515_008  # every weight is a matmul weight but the norms


def test_markdown_table_round_trips_through_the_parser():
  text = common.markdown_table(["a", "b", "c"], [["x", 1.23456, None], ["y", 12345.6, 7]])
  assert common.parse_table("intro\n" + text + "\nafter") == [{"a": "x", "b": "1.23", "c": "-"},
                                                               {"a": "y", "b": "12346", "c": "7"}]


def test_a_busy_machine_is_refused_or_its_rows_marked_noisy(monkeypatch, capsys):
  monkeypatch.setattr(common, "load_average", lambda: 3.5)
  with pytest.raises(SystemExit) as exit_info:
    common.quiet_machine_check(allow_noisy=False)
  assert exit_info.value.code == 2 and "load average 3.50 > 1.0" in capsys.readouterr().err
  assert common.quiet_machine_check(allow_noisy=True) is False
  monkeypatch.setattr(common, "load_average", lambda: 0.4)
  assert common.quiet_machine_check(allow_noisy=False) is True


def test_sides_alternate_and_the_median_repeat_is_reported():
  order, values = [], iter([10.0, 50.0, 30.0, 20.0, 40.0, 60.0])
  sides = {name: (lambda name=name: order.append(name) or {"tokens_per_second": next(values)}) for name in ("a", "b")}
  runs = common.alternate(sides, 3)
  assert order == ["a", "b", "a", "b", "a", "b"]
  a = common.median_result(runs["a"])
  assert a["tokens_per_second"] == 30.0 and a["tokens_per_second_all"] == [10.0, 30.0, 40.0] and a["repeats"] == 3
  assert common.median_result([{"error": "exit 1"}]) == {"error": "exit 1"}


def test_cpu_flags_are_added_once_per_workload_and_can_be_switched_off():
  env = common.use_cpu_flags("decode", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
  assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", *common.CPU_XLA_FLAGS["decode"]]
  assert common.use_cpu_flags("decode", dict(env))["XLA_FLAGS"] == env["XLA_FLAGS"]
  user_choice = "--xla_cpu_experimental_ynn_fusion_type=none"
  assert common.use_cpu_flags("decode", {"XLA_FLAGS": user_choice})["XLA_FLAGS"] == user_choice
  assert "XLA_FLAGS" not in common.use_cpu_flags("decode", {"INOC_JAX_BENCH_XLA_DEFAULTS": "1"})


def test_train_benchmark_without_hf_prints_a_row_per_tuning(tmp_path):
  out = run_bench("bench/train.py", "--model=", "--preset=tiny", "--skip_hf", "--batch=2", "--seq_len=16",
                  "--steps=1", "--modes=full,lora", "--dtypes=float32", "--matmul_size=256", "--allow_noisy",
                  "--repeats=2", f"--profile_dir={tmp_path}")  # bf16: test_accelerator_script_runs_on_cpu_with_a_tiny_override
  rows = common.parse_table(out)
  assert [(r["tuning"].removesuffix(" (noisy)"), r["dtype"]) for r in rows] == [("full", "float32"),
                                                                                ("LoRA r=8", "float32")]
  for row in rows:
    assert float(row["ours tok/s"]) > 0 and row["ours MFU"].endswith("%")
    assert row["compiles"] == "1"                 # the train step traced once over warm-up + timed steps
    assert float(row["ours peak GiB"]) > 0.05
    assert row["HF tok/s"] == "-" and row["repeats"] == "2"
  assert "load average at start" in out and "load average at end" in out
  assert "### ours, full, float32" in out and "| matmul |" in out  # the profile summary


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_HF, reason="the HF side needs torch, transformers and peft")
def test_train_benchmark_with_hf_trains_the_same_model_on_the_same_data():
  out = run_bench("bench/train.py", f"--model={HF_FIXTURE}", "--batch=2", "--seq_len=16", "--steps=1",
                  "--modes=full,lora", "--dtypes=float32", "--matmul_size=256", "--allow_noisy", "--repeats=1")
  rows = common.parse_table(out)
  assert len(rows) == 2
  for row in rows:
    assert float(row["HF tok/s"]) > 0 and row["ours / HF"].endswith("x")
    assert float(row["HF peak GiB"]) > 0
    # Same weights, batch and loss: the first-step losses agree (LoRA starts at B = 0).
    assert float(row["loss ours"]) == pytest.approx(float(row["loss HF"]), rel=1e-3)


def test_decode_benchmark_without_hf_runs_on_a_random_init_preset():
  out = run_bench("bench/decode.py", "--model=", "--preset=tiny", "--skip_hf", "--batches=1,2", "--prompt_len=8",
                  "--new_tokens=4", "--repeats=1", "--processes=2", "--allow_noisy")
  rows = common.parse_table(out)
  assert [r["batch"] for r in rows] == ["1", "2"]
  for row in rows:
    assert float(row["ours tok/s"]) > 0 and row["of bandwidth limit"].endswith("%")
    assert row["compiles"] == "1"                 # prefill and decode loop compiled once per bucket
    assert row["processes"] == "2"
  assert "peak host memory: ours" in out and "load average at end" in out


@pytest.mark.slow
def test_accelerator_script_runs_on_cpu_with_a_tiny_override(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PRESET="tiny", BATCH="2", SEQ_LEN="16", STEPS="1", MODES="full",
             LOSS_CHUNK="8", DECODE_BATCHES="2", PROMPT_LEN="8", NEW_TOKENS="4", MATMUL_SIZE="256",
             RESULTS_DIR=str(tmp_path), PYTHON=sys.executable)
  proc = subprocess.run(["bash", "bench/accelerator.sh"], capture_output=True, text=True, cwd=REPO, timeout=900,
                        env=env)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  reports = list(tmp_path.glob("accelerator-*.md"))
  assert len(reports) == 1
  text = reports[0].read_text()
  train_rows = common.parse_table(text.split("## decoding")[0])
  decode_rows = common.parse_table(text.split("## decoding")[1])
  assert [(r["tuning"].removesuffix(" (noisy)"), r["dtype"]) for r in train_rows] == [("full", "bfloat16")]
  assert float(train_rows[0]["ours tok/s"]) > 0
  assert [r["batch"] for r in decode_rows] == ["2"] and float(decode_rows[0]["ours tok/s"]) > 0


def test_base_dtype_benchmark_prints_losses_and_the_bytes_of_each_base():
  """Two of the four bases, one process each (the others' bytes: test_base_dtype.py, test_quantized_base.py)."""
  out = run_bench("bench/base_dtype.py", "--config=configs/organism.py", "--steps=2",  # 32-token rows
                  "--bases=float32,nf4", "--quant_block_size=16")
  rows = {line.split("|")[1].strip(): line.split("|")[2:6] for line in out.splitlines()
          if line.startswith(("| float32", "| nf4"))}
  assert float(rows["float32"][0]) == float(rows["float32"][1]) == 4.0
  assert float(rows["nf4"][1]) == 0.5 + 4 / 16 < float(rows["nf4"][0]) < 4.0  # the embedding stays float32
  for base in rows:
    losses = [float(x) for x in rows[base][3].split()]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses) and float(rows[base][2]) > 0
  assert "load average at start" in out
