"""The compile check's findings as one JSON-able dict and as text for people."""

from __future__ import annotations

from typing import Any

from inoc_jax.aot.memory import GIB, CompiledMemory, StateArithmetic, human_bytes as gib
from inoc_jax.aot.sharding_audit import RuleFallback

# HBM per chip (GiB) of the accelerators people rent for this project.
ACCELERATOR_HBM_GIB = {
    "v4": 32.0, "v5e": 16.0, "v5p": 95.0, "v6e": 32.0,
    "a100-40gb": 40.0, "a100-80gb": 80.0, "h100": 80.0, "h200": 141.0,
}


_ATTENTION_NOTES = {"splash": " (the Pallas kernel in interpret mode on CPU)",
                    "cudnn": " (compiled here as xla: CPU cannot lower cuDNN; memory an upper bound)",
                    "flash": " (compiled here as xla: CPU cannot lower Triton; memory an upper bound)"}


def build_report(*, config, mesh_shape: dict[str, int], num_devices: int, compiled: CompiledMemory,
                 arithmetic: StateArithmetic, fallbacks: list[RuleFallback], num_params: int,
                 num_trainable: int, lower_seconds: float, compile_seconds: float,
                 hbm_gib: float | None, involuntary_remats: list[str] = (), attention: str = "xla"
                 ) -> dict[str, Any]:
  ratio = compiled.params_grads_optimizer / arithmetic.total if arithmetic.total else float("nan")
  report = {
      "model": config.model.preset,
      "params": num_params,
      "trainable_params": num_trainable,
      "mesh": mesh_shape,
      "devices": num_devices,
      "global_batch_size": config.data.global_batch_size,
      "seq_len": config.data.seq_len,
      "grad_accum_steps": config.train.grad_accum_steps,
      "dtype": config.model.dtype,
      "remat": config.model.remat,
      "attention": attention,
      "lower_seconds": round(lower_seconds, 2),
      "compile_seconds": round(compile_seconds, 2),
      "compiled_bytes": {
          "arguments": compiled.arguments,
          "batch": compiled.batch,
          "state": compiled.state,
          "grads": compiled.grads,
          "params_grads_optimizer": compiled.params_grads_optimizer,
          "temporaries": compiled.temporaries,
          "outputs_not_aliased": compiled.outputs_not_aliased,
          "peak": compiled.peak,
      },
      "arithmetic_bytes": {
          "params": arithmetic.params,
          "grads": arithmetic.grads,
          "optimizer": arithmetic.optimizer,
          "total": arithmetic.total,
          "shards": arithmetic.shards,
      },
      "state_ratio": ratio,
      "peak_ratio": compiled.peak / arithmetic.total if arithmetic.total else float("nan"),
      "rule_fallbacks": [f.sentence() for f in fallbacks],
      "involuntary_remats": list(involuntary_remats),
  }
  if hbm_gib:
    report["hbm_bytes"] = hbm_gib * GIB
    report["fits"] = compiled.peak <= hbm_gib * GIB
  return report


def render(report: dict[str, Any]) -> str:
  c, a = report["compiled_bytes"], report["arithmetic_bytes"]
  mesh = " ".join(f"{k}={v}" for k, v in report["mesh"].items())
  lines = [
      f"compile check: {report['model']} ({report['params']:,} params, "
      f"{report['trainable_params']:,} trainable) on {report['devices']} devices, mesh {mesh}",
      f"  batch {report['global_batch_size']} x {report['seq_len']} tokens, grad_accum {report['grad_accum_steps']}, "
      f"compute {report['dtype']}, remat {report['remat']}, attention {report.get('attention', 'xla')}"
      f"{_ATTENTION_NOTES.get(report.get('attention'), '')}; lowered in {report['lower_seconds']:.1f}s, "
      f"compiled in {report['compile_seconds']:.1f}s",
      "per-device memory from the compiled train step:",
      f"  params + optimizer state (arguments)      {gib(c['state']):>11}",
      f"  gradients (sharded like the params)       {gib(c['grads']):>11}",
      f"  = params + grads + optimizer              {gib(c['params_grads_optimizer']):>11}",
      f"  temporaries (grads, activations, gathered) {gib(c['temporaries']):>10}",
      f"  batch {gib(c['batch'])}, outputs not aliased {gib(c['outputs_not_aliased'])}",
      f"  peak (arguments + temporaries + outputs)  {gib(c['peak']):>11}",
      f"arithmetic, the state split over {a['shards']} devices (fsdp x tensor):",
      f"  params {gib(a['params'])} + grads {gib(a['grads'])} + optimizer {gib(a['optimizer'])} "
      f"= {gib(a['total'])}",
      f"  compiled / arithmetic: params+grads+optimizer {report['state_ratio']:.3f}, peak {report['peak_ratio']:.3f}",
  ]
  if report["rule_fallbacks"]:
    lines.append("sharding rules that could not apply (dimensions replicated instead):")
    lines += [f"  - {sentence}" for sentence in report["rule_fallbacks"]]
  else:
    lines.append("sharding rules: every rule applied as written.")
  if report["involuntary_remats"]:
    lines.append("XLA could only reshard these tensors by replicating them first (a full-size copy and an "
                 "all-gather every step):")
    lines += [f"  - {op}" for op in report["involuntary_remats"]]
  if "fits" in report:
    verdict = "fits" if report["fits"] else "does NOT fit"
    lines.append(f"peak {gib(c['peak'])} {verdict} in {gib(report['hbm_bytes'])} of HBM per device.")
  return "\n".join(lines)
