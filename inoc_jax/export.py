"""Export a run (or any model source) as a Hugging Face folder.

  python -m inoc_jax.export --checkpoint=runs/ip --out=exported/ip [--step=400] [--dtype=bfloat16]
  python -m inoc_jax.export --checkpoint=smollm2-135m-instruct --out=exported/smollm2   # GGUF -> HF

`--checkpoint` is a run's workdir, its checkpoints/ folder or one step folder
(LoRA is merged into the base weights), or a model source (HF folder, GGUF
file, known name) to convert. The folder holds config.json,
generation_config.json, safetensors and the tokenizer files of the run's
tokenizer source when it has them; `transformers.AutoModelForCausalLM.from_pretrained(out)` loads it.
A LoRA run's adapters also go to `out/adapter/` in PEFT's format (`peft.PeftModel.from_pretrained(base,
out + "/adapter")`, vLLM `--lora-modules`), with the run's base model named in adapter_config.json.
"""

from __future__ import annotations

from absl import app, flags
from etils import epath

from inoc_jax import cli
from inoc_jax.runtime import layout

ADAPTER_DIR = "adapter"  # beside the merged weights, not in the same folder (transformers would stack them)

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run workdir / checkpoint folder, or a model source.")
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest readable one).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16", "float16"], "Stored tensor dtype.")
_MAX_SHARD_GB = flags.DEFINE_float("max_shard_gb", 5.0, "Split the safetensors above this size (GiB).")


def is_run_checkpoint(path: str) -> bool:
  """A workdir, its checkpoints/ folder or one step folder (local or gs://), as opposed to a model source."""
  p = epath.Path(path)
  if not p.is_dir():
    return False
  return (p / layout.CHECKPOINTS).exists() or (p / "meta").exists() or any(c.name.isdigit() for c in p.iterdir())


def export(checkpoint: str, out: str, *, step: int | None = None, dtype: str = "float32",
           max_shard_bytes: int = 5 * 2**30) -> list[str]:
  """Library form of the CLI; returns the weight files written."""
  from inoc_jax.sharding.mesh import make_mesh  # pylint: disable=g-import-not-at-top
  from inoc_jax.weights.hf_export import export_hf  # pylint: disable=g-import-not-at-top
  from inoc_jax.weights.tokenizer_files import tokenizer_files, tokenizer_spec  # pylint: disable=g-import-not-at-top
  mesh = make_mesh({"data": 1, "fsdp": -1, "tensor": 1})  # parameters sharded, never replicated
  if is_run_checkpoint(checkpoint):
    from inoc_jax.checkpoint.params import restore_params  # pylint: disable=g-import-not-at-top
    restored = restore_params(checkpoint, mesh, step=step)
    arch, params = restored.model_config, restored.params
    spec = tokenizer_spec(restored.config.data.tokenizer, restored.config.model.checkpoint)
  else:
    from flax import nnx  # pylint: disable=g-import-not-at-top
    from inoc_jax.weights.pretrained import open_pretrained  # pylint: disable=g-import-not-at-top
    pretrained = open_pretrained(checkpoint)
    arch, params = pretrained.model_config, nnx.state(pretrained.load_model(mesh))
    spec = checkpoint
  tokenizer_dir, extra = tokenizer_files(spec)
  files = export_hf(out, arch, params, dtype=dtype, max_shard_bytes=max_shard_bytes, tokenizer_dir=tokenizer_dir,
                    extra_files=extra)
  if is_run_checkpoint(checkpoint) and restored.lora is not None:
    from inoc_jax.model_sources import HUB_IDS  # pylint: disable=g-import-not-at-top
    from inoc_jax.weights.peft_export import export_peft  # pylint: disable=g-import-not-at-top
    base = restored.config.model.checkpoint
    adapter_dir = out.rstrip("/") + "/" + ADAPTER_DIR
    files += [f"{ADAPTER_DIR}/{name}" for name in export_peft(
        adapter_dir, arch, restored.adapters, restored.lora, base_model=HUB_IDS.get(base, base), dtype=dtype)]
  return files


def main(argv):
  del argv
  from inoc_jax.runtime import storage  # pylint: disable=g-import-not-at-top
  files = export(storage.resolve_if_local(_CHECKPOINT.value), storage.resolve(_OUT.value), step=_STEP.value, dtype=_DTYPE.value,
                 max_shard_bytes=int(_MAX_SHARD_GB.value * 2**30))
  print(f"Exported {_CHECKPOINT.value} to {_OUT.value} ({', '.join(files)}); load it with "
        f"transformers.AutoModelForCausalLM.from_pretrained({_OUT.value!r}).")


if __name__ == "__main__":
  flags.mark_flags_as_required(["checkpoint", "out"])
  app.run(cli.friendly(main), flags_parser=cli.parse_flags)
