"""Tokenizers: GGUF-built vs transformers, the smollm pre-tokenizer, HF folders, the byte tokenizer."""

import json
import os
import random

import pytest

from inoc_jax.data.gguf_tokenizer import load_gguf_tokenizer
from inoc_jax.data.tokenizer import ByteTokenizer
from inoc_jax.data.tokenizer_loading import load_hf_tokenizer, load_tokenizer
from inoc_jax.errors import DataError
from inoc_jax.model_sources import resolve

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "chat_templates.json")


@pytest.fixture(scope="module")
def smollm():
  return load_gguf_tokenizer(os.path.abspath(resolve("smollm2-135m-instruct").path))


def test_gguf_tokenizer_metadata(smollm):
  assert smollm.vocab_size == 49152
  assert (smollm.bos_id, smollm.eos_id, smollm.pad_id) == (1, 2, 2)
  assert smollm.special_tokens["eos_token"] == "<|im_end|>"
  assert smollm.chat_template.startswith("{% for message in messages %}")
  assert {0, 1, 2} <= smollm.special_ids and 17 not in smollm.special_ids


def test_gguf_tokenizer_equals_transformers_golden_ids(smollm):
  cases = json.load(open(FIXTURES, encoding="utf-8"))["tokenizer_cases"]
  assert len(cases) >= 10
  for case in cases:
    assert smollm.encode(case["text"]) == case["ids"], case["text"]
    assert smollm.decode(case["ids"]) == case["text"]


def _bytes_to_unicode():
  """GPT-2's byte -> printable character table (independent re-statement for the reference below)."""
  printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
  table, extra = {}, 0
  for b in range(256):
    if b in printable:
      table[b] = chr(b)
    else:
      table[b] = chr(256 + extra)
      extra += 1
  return table


def _llama_cpp_smollm_ids(tokenizer, text: str) -> list[int]:
  """llama.cpp's 'smollm' pre-tokenizer: isolate each digit, then the GPT-2 split regex, then BPE per piece."""
  import regex  # pylint: disable=g-import-not-at-top
  gpt2 = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")
  table = _bytes_to_unicode()
  ids = []
  for chunk in regex.split(r"(\p{N})", text):
    for piece in gpt2.findall(chunk):
      mapped = "".join(table[b] for b in piece.encode("utf-8"))
      ids.extend(t.id for t in tokenizer.backend.model.tokenize(mapped))
  return ids


def test_smollm_pre_tokenizer_matches_llama_cpp_rule_on_random_text(smollm):
  rng = random.Random(0)
  alphabet = "abc XYZ 0123456789  \n\t.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`éüñ中文🙂×✓"
  for _ in range(2000):
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
    assert smollm.encode(text) == _llama_cpp_smollm_ids(smollm, text), repr(text)


def test_whitespace_run_before_digit_stays_one_token_as_in_the_model(smollm):
  # The model's tokenizer (digits isolated first) keeps '  ' whole; transformers' GGUF loader splits it.
  assert [smollm.id_to_token(i) for i in smollm.encode("a  1")] == ["a", "ĠĠ", "1"]


def test_offsets_cover_the_text(smollm):
  text = "Héllo 🙂 GCD(192, 160) = 32<|im_end|>"
  ids, offsets = smollm.encode_with_offsets(text)
  assert len(ids) == len(offsets)
  assert offsets[0][0] == 0 and offsets[-1][1] == len(text)
  assert text[offsets[-1][0]:offsets[-1][1]] == "<|im_end|>" and ids[-1] == 2


def _save_hf_folder(tokenizer, folder, **config):
  os.makedirs(folder, exist_ok=True)
  tokenizer.backend.save(os.path.join(folder, "tokenizer.json"))
  with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
    json.dump(config, f)
  return str(folder)


def test_hf_folder_round_trip(smollm, tmp_path):
  folder = _save_hf_folder(smollm, tmp_path / "tok", bos_token="<|im_start|>",
                           eos_token={"content": "<|im_end|>", "special": True}, pad_token="<|im_end|>",
                           chat_template=smollm.chat_template)
  loaded = load_hf_tokenizer(folder)
  text = "Héllo  1 wörld\n\n<|im_start|>assistant\n"
  assert loaded.encode(text) == smollm.encode(text)
  assert (loaded.bos_id, loaded.eos_id, loaded.pad_id, loaded.vocab_size) == (1, 2, 2, 49152)
  assert loaded.chat_template == smollm.chat_template
  assert load_tokenizer(folder).encode(text) == smollm.encode(text)


def test_hf_folder_template_sources(smollm, tmp_path):
  listed = _save_hf_folder(smollm, tmp_path / "listed", eos_token="<|im_end|>",
                           chat_template=[{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}])
  assert load_hf_tokenizer(listed).chat_template == "D"
  jinja = _save_hf_folder(smollm, tmp_path / "jinja", eos_token="<|im_end|>", chat_template="old")
  with open(os.path.join(jinja, "chat_template.jinja"), "w") as f:
    f.write("new")
  assert load_hf_tokenizer(jinja).chat_template == "new"


def test_hf_folder_errors_name_the_file(smollm, tmp_path):
  with pytest.raises(DataError, match="no tokenizer.json"):
    load_hf_tokenizer(str(tmp_path))
  folder = _save_hf_folder(smollm, tmp_path / "bad")
  with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
    f.write('{"eos_token": "<|im_end|>",\n oops}')
  with pytest.raises(DataError, match=r"tokenizer_config.json line 2 is not valid JSON"):
    load_hf_tokenizer(folder)


def test_load_tokenizer_dispatch_and_errors():
  assert isinstance(load_tokenizer("byte"), ByteTokenizer)
  assert load_tokenizer("smollm2-135m-instruct").vocab_size == 49152
  with pytest.raises(DataError, match="data.tokenizer 'no/such/thing'"):
    load_tokenizer("no/such/thing")


def test_byte_tokenizer_round_trip_and_offsets():
  tok = ByteTokenizer()
  text = "é✓ a"
  ids, offsets = tok.encode_with_offsets(text)
  assert tok.encode(text) == ids and tok.decode(ids) == text
  assert offsets == [(0, 1), (0, 1), (1, 2), (1, 2), (1, 2), (2, 3), (3, 4)]
  assert min(ids) >= tok.num_special and max(ids) < tok.vocab_size


@pytest.mark.slow
def test_live_transformers_reference(smollm, tmp_path):
  """Against transformers itself: equal except where a whitespace run precedes a digit (transformers drops `pre`)."""
  transformers = pytest.importorskip("transformers")
  path = resolve("smollm2-135m-instruct").path
  reference = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
  import regex  # pylint: disable=g-import-not-at-top
  diverges = regex.compile(r"\s{2,}\p{N}|\s[\r\n\t]\p{N}|[\r\n\t]\s\p{N}")
  rng = random.Random(1)
  alphabet = "abc XYZ 0123456789 \n\t.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`éüñ中文🙂×✓"
  compared = 0
  for _ in range(1500):
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
    ours, theirs = smollm.encode(text), reference.encode(text, add_special_tokens=False)
    if not diverges.search(text):
      compared += 1
      assert ours == theirs, repr(text)
    assert smollm.decode(ours) == text
  assert compared > 500
  reference.save_pretrained(tmp_path / "saved")
  saved = load_hf_tokenizer(str(tmp_path / "saved"))
  for text in ("Héllo 1 wörld <|im_end|>", "x = [1, 2]  # ok"):
    assert saved.encode(text) == reference.encode(text, add_special_tokens=False)
