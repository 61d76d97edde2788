"""Shared machinery of the settings' TFDS builders (array_record files, read without TensorFlow).

A setting's builder stores its *raw* records (problems, reference answers,
labels: no instruction inserted), one TFDS config per content (the config name
carries the generator's parameters or a hash of the source files), so the
prompt under study can change without rebuilding. `load_split` prepares the
data set once under `data.tfds_dir` and reads it back through `as_data_source`,
decoding bytes to str and arrays to lists.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterable, Mapping

import numpy as np
import tensorflow_datasets as tfds

from inoc_jax.errors import DataError

log = logging.getLogger("inoc_jax")

NONE_INT = -1  # stands for None in optional integer fields
OPTIONAL_SPLITS = ("heldout",)  # splits a config may size to zero


class SettingBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base builder: subclasses set FEATURES and implement `split_records() -> {split: iterable of dicts}`."""

  VERSION = tfds.core.Version("1.0.0")
  FEATURES: Mapping[str, Any] = {}

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):  # no checksum files next to the code: sources are verified by `sources.fetch`
    return None

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, description=(self.__doc__ or "").strip(),
                                 features=tfds.features.FeaturesDict(dict(self.FEATURES)), disable_shuffling=True)

  def _log_download_bytes(self) -> None:  # TFDS prints these to stdout; inoc_jax logs instead
    pass

  def _log_download_done(self) -> None:
    pass

  def split_records(self) -> Mapping[str, Iterable[Mapping[str, Any]]]:
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    del dl_manager  # sources are fetched and verified by inoc_jax.data.settings.sources
    splits = {name: list(records) for name, records in self.split_records().items()}
    # TFDS cannot write an empty split; `load_split` reads an absent optional split as empty.
    return {name: self._generate_examples(records) for name, records in splits.items() if records}

  def _generate_examples(self, records):
    for index, record in enumerate(records):
      yield index, dict(record)


def _decode(value):
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray):
    return [_decode(v) for v in value.tolist()] if value.ndim else _decode(value.item())
  if isinstance(value, (list, tuple)):
    return [_decode(v) for v in value]
  if isinstance(value, dict):
    return {k: _decode(v) for k, v in value.items()}
  if isinstance(value, np.generic):
    return value.item()
  return value


@contextlib.contextmanager
def _quiet_absl():
  """TFDS warns through absl about every config not listed in BUILDER_CONFIGS; ours are parametric by design."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def prepare(builder_cls, builder_config, data_dir: str):
  """The builder, with its data prepared under data_dir (built once; later calls only read)."""
  with _quiet_absl():
    builder = builder_cls(config=builder_config, data_dir=data_dir, file_format="array_record")
  if not os.path.isdir(builder.data_dir) or not builder.info.splits:
    tfds.disable_progress_bar()
    log.info("building TFDS data set %s/%s in %s", builder.name, builder_config.name, data_dir)
    try:
      with _quiet_absl():
        builder.download_and_prepare()
    except DataError:
      raise
    except OSError as e:
      with _quiet_absl():  # another host on a shared file system may have finished the same build first
        builder = builder_cls(config=builder_config, data_dir=data_dir, file_format="array_record")
      if not (os.path.isdir(builder.data_dir) and builder.info.splits):
        raise DataError(f"Cannot write the TFDS data set to {data_dir} ({e.strerror}); set data.tfds_dir to a "
                        "writable folder.") from None
  return builder


_CACHE: dict[tuple, tuple[dict, ...]] = {}


def load_split(builder_cls, builder_config, data_dir: str, split: str) -> list[dict[str, Any]]:
  """All records of one split, in generation order, as plain Python values (read once per process).

  The cache key is the config name, which carries the content (generator parameters or source hashes).
  """
  key = (builder_cls, builder_config.name, os.path.abspath(data_dir), split)
  if key not in _CACHE:
    builder = prepare(builder_cls, builder_config, data_dir)
    if split not in builder.info.splits and split in OPTIONAL_SPLITS:
      return []  # asked for with zero examples (e.g. data.num_heldout_examples=0)
    if split not in builder.info.splits:
      raise DataError(f"{builder.name} has no split {split!r}; choose one of {', '.join(builder.info.splits)}.")
    source = builder.as_data_source(split=split)
    _CACHE[key] = tuple(_decode(source[i]) for i in range(len(source)))
  return [dict(record) for record in _CACHE[key]]


def rows_of(columns: Mapping[str, list]) -> list[dict[str, Any]]:
  """A TFDS Sequence of dicts comes back as a dict of lists; this turns it back into a list of dicts."""
  keys = list(columns)
  return [dict(zip(keys, values)) for values in zip(*(columns[k] for k in keys))]


def optional(value: int) -> int | None:
  return None if value == NONE_INT else int(value)
