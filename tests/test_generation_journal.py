"""Generation journals: an evaluation cut off mid-way restarts at the batch it was in, with the same outputs."""

import json

import pytest
from flax import nnx

from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from inoc_jax.sampling import Sampler, SamplingParams
from inoc_jax.sampling.journal import GenerationJournal, fingerprint

PROMPTS = [[1, 5, 6, 7], [1, 8, 9], [1] + list(range(10, 30)), [1, 2, 3, 4, 5, 6], [1, 40, 41],
           [1] + list(range(100, 118)), [1, 60, 61, 62], [1, 70]]
PARAMS = SamplingParams(max_new_tokens=6, temperature=1.0, top_p=0.9, num_samples=2, seed=3)


class Killed(Exception):
  pass


class DiesAfter(GenerationJournal):
  """A journal whose process is 'killed' after it has recorded `batches` batches."""

  def __init__(self, *args, batches: int, **kwargs):
    super().__init__(*args, **kwargs)
    self.left = batches

  def record(self, entries):
    super().record(entries)
    self.left -= 1
    if self.left == 0:
      raise Killed


@pytest.fixture(scope="module")
def sampler():
  return Sampler.from_model(Transformer(get_preset("tiny"), rngs=nnx.Rngs(0)), batch_size=4, progress=False,
                            max_prompt_len=64)


def _tokens(outputs):
  return [[g.tokens for g in samples] for samples in outputs]


def test_a_cut_off_generation_resumes_from_its_journal_with_the_same_outputs(sampler, tmp_path, monkeypatch):
  uninterrupted = _tokens(sampler.generate(PROMPTS, PARAMS))
  path, key = str(tmp_path / "g.jsonl"), fingerprint("model", PROMPTS, PARAMS.seed)
  with pytest.raises(Killed):
    sampler.generate(PROMPTS, PARAMS, journal=DiesAfter(path, key, batches=2))
  kept = len(GenerationJournal(path, key, writer=False))
  assert 0 < kept < len(PROMPTS) * PARAMS.num_samples
  generated = []
  real = sampler._generate_batch
  monkeypatch.setattr(sampler, "_generate_batch", lambda batch, *a: generated.append(batch.num_rows) or real(
      batch, *a))
  journal = GenerationJournal(path, key)
  assert _tokens(sampler.generate(PROMPTS, PARAMS, journal=journal)) == uninterrupted
  assert journal.reused == kept and sum(generated) == len(PROMPTS) * PARAMS.num_samples - kept
  journal.remove()
  assert not (tmp_path / "g.jsonl").exists()


def test_a_torn_line_is_made_again_and_another_key_starts_afresh(tmp_path):
  path = str(tmp_path / "g.jsonl")
  journal = GenerationJournal(path, "k1")
  entry = dict(tokens=[4, 5], text="ab", finish_reason="length", prompt_index=0, sample_index=0)
  journal.record([entry, dict(entry, prompt_index=1)])
  with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps(dict(entry, prompt_index=2))[:20])  # killed mid-write
  again = GenerationJournal(path, "k1")
  assert len(again) == 2 and again.lookup([(0, 0), (1, 0)]) is not None and again.lookup([(2, 0)]) is None
  again.record([dict(entry, prompt_index=2)])
  assert len(GenerationJournal(path, "k1", writer=False)) == 3  # the rewrite dropped the torn line
  assert len(GenerationJournal(path, "k2")) == 0  # another model / prompt set / decoding
  assert len(GenerationJournal(path, "k1")) == 0  # ... and it replaced the stale file


def test_object_store_paths_keep_no_journal():
  assert GenerationJournal.open_for("gs://bucket/run/g.jsonl", "k", writer=True) is None
  assert GenerationJournal.open_for(None, "k", writer=True) is None
