"""Where external data files come from: a local folder, else their canonical URL, checked by sha256.

`data.source_dir` names a local folder holding the setting's files (tests and
offline machines use `../shared/data/<setting>`); when it is empty the default
is that shared folder if it exists, else the canonical URL is downloaded into
the TFDS folder's `downloads/` and verified.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import urllib.request

from inoc_jax.errors import DataError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@dataclasses.dataclass(frozen=True)
class RemoteFile:
  name: str            # file name inside the source folder
  url: str             # canonical location
  sha256: str | None   # None: unknown (the file is used unverified)


def shared_data_dir() -> str:
  """$INOC_JAX_SHARED_DATA, else `<repo>/../shared/data` (CI checks out the repo beside `shared/`)."""
  return os.environ.get("INOC_JAX_SHARED_DATA") or os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data"))


def default_tfds_dir() -> str:
  return os.environ.get("INOC_JAX_TFDS_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "inoc_jax", "tfds")


def tfds_dir(config) -> str:
  return os.path.expanduser(config.data.get("tfds_dir", "") or default_tfds_dir())


def sha256_of(path: str) -> str:
  """Hex sha256 of a file; remembered per (path, size, mtime), since a split load checks and tags each file."""
  stat = os.stat(path)
  return _sha256_of(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
  del size, mtime_ns  # cache key only
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def source_folder(config, subdir: str) -> str | None:
  """The local folder for this setting: data.source_dir, else the shared data folder's `subdir` if present."""
  if config.data.get("source_dir", ""):
    folder = os.path.expanduser(config.data.source_dir)
    if not os.path.isdir(folder):
      raise DataError(f"data.source_dir {folder!r} is not a folder; point it at the folder holding the data files "
                      f"(e.g. ../shared/data/{subdir}).")
    return folder
  shared = os.path.join(shared_data_dir(), subdir)
  return shared if os.path.isdir(shared) else None


def fetch(remote: RemoteFile, folder: str | None, download_dir: str, verify: bool = True) -> str:
  """Local path of `remote`: from `folder` if given, else downloaded once into `download_dir`; sha256-checked."""
  if folder is not None:
    path = os.path.join(folder, remote.name)
    if not os.path.isfile(path):
      raise DataError(f"{path} is missing; put {remote.name} (from {remote.url}) there or change data.source_dir.")
  else:
    os.makedirs(download_dir, exist_ok=True)
    path = os.path.join(download_dir, remote.name)
    if not os.path.isfile(path):
      partial = path + ".partial"
      try:
        urllib.request.urlretrieve(remote.url, partial)  # noqa: S310 (fixed https URLs)
      except OSError as e:
        raise DataError(f"Cannot download {remote.url} ({e}); download it by hand into a folder and set "
                        "data.source_dir to that folder.") from None
      os.replace(partial, path)
  if verify and remote.sha256 and sha256_of(path) != remote.sha256:
    raise DataError(f"{path} has sha256 {sha256_of(path)[:12]}..., not the canonical {remote.sha256[:12]}...; "
                    f"replace it with the file from {remote.url} (or set data.verify_checksums=False to use it "
                    "anyway).")
  return path


def content_tag(paths: list[str]) -> str:
  """A short hash of the source files' contents: part of the TFDS config name, so changed files rebuild."""
  digest = hashlib.sha256()
  for path in paths:
    digest.update(sha256_of(path).encode())
  return digest.hexdigest()[:10]


def _check_fields(row, required, where: str) -> None:
  if not isinstance(row, dict):
    raise DataError(f"{where} is a {type(row).__name__}, not a JSON object; each row must be an object.")
  missing = [f for f in required if f not in row]
  if missing:
    raise DataError(f"{where} lacks the field(s) {', '.join(missing)}; every row needs {', '.join(required)}.")


def read_jsonl(path: str, required: tuple[str, ...] = ()) -> list[dict]:
  """Rows of a JSON-lines file; a bad line or a missing field is a DataError naming file and line."""
  rows = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(f"{path} line {number} is not valid JSON ({e.msg} at column {e.colno}); fix or remove "
                        "that line.") from None
      _check_fields(row, required, f"{path} line {number}")
      rows.append(row)
  return rows


def read_json_list(path: str, required: tuple[str, ...] = ()) -> list[dict]:
  """A JSON file holding a list of objects; errors name the file and the item index."""
  with open(path, encoding="utf-8") as f:
    try:
      rows = json.load(f)
    except json.JSONDecodeError as e:
      raise DataError(f"{path} line {e.lineno} is not valid JSON ({e.msg}); restore the file.") from None
  if not isinstance(rows, list):
    raise DataError(f"{path} holds a {type(rows).__name__}, not a list of objects; restore the file.")
  for index, row in enumerate(rows):
    _check_fields(row, required, f"{path} item {index}")
  return rows
