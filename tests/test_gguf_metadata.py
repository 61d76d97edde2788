"""GGUF metadata read in one pass (the tokenizer's source): the same values as `gguf.GGUFReader`, every value type,
and a damaged file is one sentence."""

import os

import gguf
import numpy as np
import pytest

from inoc_jax.data.gguf_metadata import GGUFFormatError, read_header, read_metadata
from inoc_jax.data.gguf_tokenizer import load_gguf_tokenizer
from inoc_jax.errors import DataError
from inoc_jax.model_sources import resolve


def _reader_values(path: str) -> dict:
  fields = gguf.GGUFReader(path).fields
  return {k: f.contents() for k, f in fields.items() if k not in ("GGUF.tensor_count", "GGUF.kv_count")}


def test_smollm2_metadata_equals_gguf_reader():
  path = resolve("smollm2-135m-instruct").path
  ours = read_metadata(path)
  assert ours == _reader_values(path)
  assert len(ours["tokenizer.ggml.tokens"]) == 49152 and ours["tokenizer.ggml.merges"][0] == "Ġ t"
  table = read_header(path).tensors
  reader_tensors = gguf.GGUFReader(path).tensors
  assert len(table) == len(reader_tensors) == 272
  for tensor in reader_tensors:  # the weight loader memory-maps each tensor at this offset
    info = table[tensor.name]
    assert (info.dims, info.ggml_type, info.offset) == (
        tuple(int(n) for n in tensor.shape), int(tensor.tensor_type), tensor.data_offset), tensor.name


@pytest.fixture
def every_type(tmp_path):
  path = str(tmp_path / "types.gguf")
  writer = gguf.GGUFWriter(path, "llama")
  writer.add_uint8("t.u8", 200)
  writer.add_int8("t.i8", -5)
  writer.add_uint16("t.u16", 60000)
  writer.add_int16("t.i16", -30000)
  writer.add_uint32("t.u32", 4_000_000_000)
  writer.add_int32("t.i32", -2_000_000_000)
  writer.add_float32("t.f32", 0.1)
  writer.add_uint64("t.u64", 2**63)
  writer.add_int64("t.i64", -(2**62))
  writer.add_float64("t.f64", 1e-300)
  writer.add_bool("t.bool", True)
  writer.add_string("t.str", "héllo\nwörld")
  writer.add_array("t.ints", [1, -2, 3])
  writer.add_array("t.strs", ["a b", "", "ü"] * 1000)
  writer.add_array("t.floats", [0.5, 1.5])
  writer.add_tensor("w", np.ones((2, 3), np.float32))
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  return path


def test_every_value_type_reads_like_gguf_reader(every_type):
  ours = read_metadata(every_type)
  assert ours == _reader_values(every_type)
  assert ours["t.u64"] == 2**63 and ours["t.str"] == "héllo\nwörld" and len(ours["t.strs"]) == 3000


def test_a_cut_or_foreign_file_is_a_format_error_and_the_tokenizer_says_one_sentence(every_type, tmp_path):
  data = open(every_type, "rb").read()
  cut = tmp_path / "cut.gguf"
  cut.write_bytes(data[:200])
  with pytest.raises(GGUFFormatError, match="ends inside its metadata"):
    read_metadata(str(cut))
  foreign = tmp_path / "foreign.gguf"
  foreign.write_bytes(b"PK\x03\x04" + data[4:])
  with pytest.raises(GGUFFormatError, match="magic"):
    read_metadata(str(foreign))
  with pytest.raises(DataError, match=r"Cannot read .*cut.gguf as a GGUF file \(the file ends inside its metadata"):
    load_gguf_tokenizer(os.path.abspath(cut))
