"""`python -m inoc_jax.compile_check`: AOT compile on fake devices, memory report, sharding errors."""

import json
import os
import subprocess
import sys

import pytest

from inoc_jax.aot.target import parse_mesh, target_device_count
from inoc_jax.errors import ConfigError
from tests.conftest import REPO

QWEN_7B = ["--config.model.preset=qwen2-7b", "--config.model.dtype=bfloat16", "--config.model.remat=full",
           "--config.loss.chunk_size=128", "--config.data.seq_len=256"]


def _compile_check(tmp_path, *args, timeout=600):
  """Runs the CLI in a clean environment (it re-executes itself with fake devices)."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  out = tmp_path / "report.json"
  proc = subprocess.run([sys.executable, "-m", "inoc_jax.compile_check", "--config=configs/sycophancy.py:tiny",
                         f"--json={out}", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                        env=env)
  report = json.loads(out.read_text()) if out.exists() else None
  return proc, report


def test_parse_mesh_fills_missing_axes_and_rejects_typos():
  from inoc_jax.aot import target
  from inoc_jax.sharding import mesh
  assert target.MESH_AXES == mesh.MESH_AXES
  assert parse_mesh("data:16,fsdp:16,tensor:1") == {"data": 16, "fsdp": 16, "tensor": 1}
  assert parse_mesh("fsdp:8") == {"data": 1, "fsdp": 8, "tensor": 1}
  with pytest.raises(ConfigError, match="axis:size"):
    parse_mesh("fdsp:8")
  with pytest.raises(ConfigError, match="not an integer"):
    parse_mesh("fsdp:eight")
  assert target_device_count({"data": 2, "fsdp": 8, "tensor": 1}, None) == 16
  assert target_device_count({"data": -1, "fsdp": 8, "tensor": 1}, 64) == 64
  with pytest.raises(ConfigError, match="--devices"):
    target_device_count({"data": -1, "fsdp": 8, "tensor": 1}, None)


def test_tiny_model_compiles_with_sharded_state(tmp_path):
  proc, report = _compile_check(tmp_path, "--mesh=data:2,fsdp:2,tensor:1", "--config.data.global_batch_size=8")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "per-device memory from the compiled train step" in proc.stdout
  assert report["devices"] == 4 and report["mesh"] == {"data": 2, "fsdp": 2, "tensor": 1}
  assert report["arithmetic_bytes"]["shards"] == 2  # data replicates, fsdp splits
  assert 0.95 < report["state_ratio"] < 1.2  # only norms are replicated
  assert report["compiled_bytes"]["temporaries"] > 0 and report["rule_fallbacks"] == []


def test_a_tpu_target_compiles_the_splash_kernel_a_cpu_target_the_xla_path(tmp_path):
  """`auto` attention is chosen for the target's platform (a GPU's flash kernel for packed rows is compiled as
  XLA); on TPU the splash kernel holds no [heads, seq, seq] scores, so with 512-token rows and no remat its
  temporaries are smaller than the XLA path's."""
  args = ["--mesh=data:2,fsdp:1,tensor:1", "--config.data.global_batch_size=4", "--config.data.seq_len=512"]
  reports, stdout = {}, {}
  for target in ("--accelerator=v5e", "--hbm_gib=16", "--accelerator=h100"):
    extra = ["--config.data.packing=True"] if target == "--accelerator=h100" else []
    proc, reports[target] = _compile_check(tmp_path, *args, *extra, target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stdout[target] = proc.stdout
  assert reports["--accelerator=h100"]["attention"] == "flash"  # packed rows on a GPU
  assert "flash (compiled here as xla" in stdout["--accelerator=h100"]
  assert reports["--accelerator=v5e"]["attention"] == "splash"
  assert "attention splash (the Pallas kernel in interpret mode on CPU)" in stdout["--accelerator=v5e"]
  assert reports["--hbm_gib=16"]["attention"] == "xla"
  assert (reports["--accelerator=v5e"]["compiled_bytes"]["temporaries"]
          < reports["--hbm_gib=16"]["compiled_bytes"]["temporaries"])


def test_an_nf4_base_shards_its_codes_and_scales_by_the_kernels_rules(tmp_path):
  """QLoRA under FSDP: every code and scale leaf is split like its kernel (--strict: no rule falls back), the
  frozen state shrinks, and the parameter count is still the architecture's."""
  args = ["--mesh=data:1,fsdp:2,tensor:1", "--config.data.global_batch_size=4", "--config.lora.enabled=True",
          "--strict"]
  dense_proc, dense = _compile_check(tmp_path, *args)
  proc, nf4 = _compile_check(tmp_path, *args, "--config.model.base_quant=nf4", "--config.model.quant_block_size=16")
  assert dense_proc.returncode == 0 and proc.returncode == 0, proc.stderr[-3000:]
  assert nf4["rule_fallbacks"] == [] and nf4["params"] == dense["params"]
  assert nf4["arithmetic_bytes"]["params"] < 0.6 * dense["arithmetic_bytes"]["params"]
  assert nf4["compiled_bytes"]["state"] < dense["compiled_bytes"]["state"]


def test_batch_not_divisible_by_data_parallel_size_is_one_sentence(tmp_path):
  proc, report = _compile_check(tmp_path, "--mesh=fsdp:4", "--config.data.global_batch_size=6")
  assert proc.returncode == 2 and report is None
  message = proc.stderr.strip().splitlines()[-1]
  assert message.startswith("error: ") and "not divisible by the data-parallel size 4" in message
  assert "Traceback" not in proc.stderr


def test_rule_that_cannot_apply_is_reported_and_strict_rejects_it(tmp_path):
  # tiny has 2 KV heads: tensor=4 cannot split them, so k/v kernels fall back to replication.
  args = ["--mesh=fsdp:1,tensor:4", "--config.data.global_batch_size=4"]
  proc, report = _compile_check(tmp_path, *args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert any("k_proj/kernel" in s and "tensor=4" in s for s in report["rule_fallbacks"])
  assert "could not apply" in proc.stdout
  strict, _ = _compile_check(tmp_path, *args, "--strict")
  assert strict.returncode == 2
  assert "cannot split dimension 1 (size 2) over mesh axis tensor=4" in strict.stderr
  assert "Traceback" not in strict.stderr


def test_peak_over_hbm_budget_exits_1(tmp_path):
  proc, report = _compile_check(tmp_path, "--mesh=fsdp:2", "--config.data.global_batch_size=2", "--hbm_gib=0.001")
  assert proc.returncode == 1 and report["fits"] is False
  assert "does NOT fit" in proc.stdout


@pytest.mark.parametrize("devices", [16, pytest.param(64, marks=pytest.mark.scale)])
def test_qwen2_7b_fsdp_estimate_matches_params_grads_adam_arithmetic(tmp_path, devices):
  proc, report = _compile_check(tmp_path, *QWEN_7B, f"--config.data.global_batch_size={devices}",
                                f"--mesh=data:1,fsdp:{devices},tensor:1", "--accelerator=v5e",
                                "--config.model.attention_impl=xla")  # the state arithmetic is the subject
  assert proc.returncode == 0, proc.stderr[-3000:]
  print(proc.stdout)
  params = report["params"]
  assert params == 7_615_616_512
  arithmetic = 16 * params / devices  # fp32 params + fp32 grads + Adam mu, nu
  assert report["arithmetic_bytes"]["total"] == pytest.approx(arithmetic, rel=1e-6)
  compiled = report["compiled_bytes"]
  assert compiled["params_grads_optimizer"] == pytest.approx(arithmetic, rel=0.2)
  # The compiled peak adds activations and transient buffers on top of the state, but stays bounded.
  assert arithmetic < compiled["peak"] < (1.3 if devices == 16 else 2.0) * arithmetic
  assert report["fits"] is True


def test_mixed_mesh_with_accumulation_reshards_without_replicating(tmp_path):
  """Activation constraints must leave GSPMD no reshard it can only do by replicating a tensor."""
  proc, report = _compile_check(tmp_path, "--mesh=data:2,fsdp:2,tensor:2", "--config.data.global_batch_size=8",
                                "--config.train.grad_accum_steps=2", "--config.lora.enabled=True", "--strict")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert report["involuntary_remats"] == [] and report["rule_fallbacks"] == []
  assert "Involuntary full rematerialization" not in proc.stderr


def test_xla_resharding_warnings_are_captured_from_the_c_level_stderr(capfd):
  from inoc_jax.aot import lowering
  warning = ('W1129 spmd_partitioner.cc:656] [SPMD] Involuntary full rematerialization. The compiler cannot go '
             'from sharding {devices=[4,1,1]<=[4]} to {devices=[1,1,2,2]<=[2,2]T(1,0) last_tile_dim_replicate} '
             'efficiently for HLO operation %sharding_constraint.17 = f32[2,384,64]{2,1,0} copy(%add_any.60), '
             'metadata={op_name="jit(_step)/transpose(jvp())/sharding_constraint" stack_frame_id=50}.\n')
  with lowering._captured_stderr() as log:  # pylint: disable=protected-access
    os.write(2, warning.encode())
  assert lowering._REMAT_WARNING.findall(log[0]) == ["jit(_step)/transpose(jvp())/sharding_constraint"]
  assert "Involuntary" in capfd.readouterr().err  # echoed back for the user
