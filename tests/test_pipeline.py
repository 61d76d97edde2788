"""The grain pipeline: host shares, resumable state, packing that never mixes examples, truncation policy."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from inoc_jax.data.chat_template import PlainChatEncoder
from inoc_jax.data.conversation import Example, Message
from inoc_jax.data.pipeline import BatchIterator, TokenizedExample, tokenize_examples
from inoc_jax.data.roles import Role
from inoc_jax.data.tokenizer import ByteTokenizer
from inoc_jax.errors import ConfigError, DataError
from inoc_jax.model.attention import attention_mask
from inoc_jax.model.config import get_preset
from inoc_jax.model.transformer import Transformer
from tests.conftest import run_processes


def _examples(n=23, seed=0, low=3, high=20):
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    length = int(rng.integers(low, high))
    roles = np.full(length, Role.USER, np.int8)
    roles[length // 2:] = Role.ASSISTANT
    out.append(TokenizedExample(f"ex{i:02d}", rng.integers(5, 250, length).astype(np.int32), roles))
  return out


def _ids(batch):
  return [i for i in batch["example_ids"].ravel() if i]


def test_hosts_read_disjoint_shares_whose_union_is_the_epoch():
  examples = _examples(23)
  single = BatchIterator(examples, global_batch_size=2, seq_len=24, seed=5)
  epoch_order = [x for _ in range(11) for x in _ids(next(single))]
  shares = []
  for host in (0, 1):
    it = BatchIterator(examples, global_batch_size=2, seq_len=24, seed=5, process_index=host, process_count=2)
    assert it.rows == 1 and it.batches_per_epoch() == 11
    shares.append([x for _ in range(11) for x in _ids(next(it))])
  assert not set(shares[0]) & set(shares[1])
  assert set(shares[0]) | set(shares[1]) == set(epoch_order[:22])  # the epoch, minus 23 mod 2 = 1 example
  assert shares[0] == epoch_order[0:22:2] and shares[1] == epoch_order[1:22:2]


def test_order_is_seeded_and_reshuffled_each_epoch():
  examples = _examples(20)

  def epochs(seed, shuffle=True, count=2):
    it = BatchIterator(examples, global_batch_size=4, seq_len=24, seed=seed, shuffle=shuffle)
    return [[x for _ in range(5) for x in _ids(next(it))] for _ in range(count)]

  first, second = epochs(1)
  assert sorted(first) == sorted(second) == sorted(e.example_id for e in examples)
  assert first != second and epochs(1) == [first, second] and epochs(2)[0] != first
  assert epochs(1, shuffle=False)[0] == [e.example_id for e in examples]


@pytest.mark.parametrize("packing", [False, True])
def test_resume_from_saved_state_gives_the_identical_next_batch(packing):
  examples = _examples(40)
  make = lambda: BatchIterator(examples, global_batch_size=4, seq_len=48, seed=3, packing=packing)  # noqa: E731
  it = make()
  for _ in range(7):
    next(it)
  state = json.loads(json.dumps(it.get_state()))  # the state survives a JSON round trip (checkpoint metadata)
  expected = [next(it) for _ in range(3)]
  resumed = make()
  resumed.set_state(state)
  for want in expected:
    got = next(resumed)
    for key in ("tokens", "roles", "segment_ids", "positions", "example_ids"):
      np.testing.assert_array_equal(got[key], want[key])
  other = BatchIterator(examples[:-1], global_batch_size=4, seq_len=48, seed=3, packing=packing)
  with pytest.raises(DataError, match="num_examples=40, this run has 39"):
    other.set_state(state)


def test_fixed_shapes_padding_and_batches_per_epoch():
  examples = _examples(30)
  for packing in (False, True):
    it = BatchIterator(examples, global_batch_size=3, seq_len=40, seed=0, packing=packing, max_examples_per_row=3)
    for _ in range(6):
      batch = next(it)
      for key in ("tokens", "roles", "segment_ids", "positions"):
        assert batch[key].shape == (3, 40) and batch[key].dtype == np.int32
      pad = batch["segment_ids"] == 0
      assert (batch["roles"][pad] == Role.PAD).all() and (batch["tokens"][pad] == 0).all()
      assert batch["segment_ids"].max() <= 3
  assert BatchIterator(examples, global_batch_size=3, seq_len=40, seed=0).batches_per_epoch() == 10
  packed = BatchIterator(examples, global_batch_size=3, seq_len=40, seed=0, packing=True)
  total = sum(len(e.ids) for e in examples)
  assert total // (3 * 40) <= packed.batches_per_epoch() < 10


def test_packing_never_attends_across_examples():
  """Each example's logits in a packed row equal its logits alone: the attention mask isolates segments."""
  examples = _examples(12, low=4, high=14)
  it = BatchIterator(examples, global_batch_size=2, seq_len=48, seed=0, packing=True)
  batch = next(it)
  assert batch["segment_ids"].max() >= 3
  seg_pos = (jax.numpy.asarray(batch["segment_ids"]), jax.numpy.asarray(batch["positions"]))
  mask = np.asarray(attention_mask(*seg_pos, *seg_pos))
  seg = batch["segment_ids"]
  cross = (seg[:, :, None] != seg[:, None, :])
  assert not (mask[:, 0] & cross).any()
  model = Transformer(get_preset("tiny"), rngs=nnx.Rngs(0))
  packed_logits = np.asarray(model.logits(model.hidden_states(batch["tokens"], batch["positions"],
                                                              batch["segment_ids"])[0]))
  by_id = {e.example_id: e for e in examples}
  for r in range(2):
    for s in range(1, seg[r].max() + 1):
      example = by_id[batch["example_ids"][r, s - 1]]
      where = np.flatnonzero(seg[r] == s)
      np.testing.assert_array_equal(batch["tokens"][r, where], example.ids)
      np.testing.assert_array_equal(batch["positions"][r, where], np.arange(len(where)))
      alone = example.ids[None]
      alone_logits = np.asarray(model.logits(model.hidden_states(alone, np.arange(alone.shape[1])[None],
                                                                 np.ones_like(alone))[0]))
      np.testing.assert_allclose(packed_logits[r, where], alone_logits[0], atol=2e-5, rtol=1e-5)


def _conversation(i, answer):
  return Example(f"c{i}", (Message.plain("user", f"question {i}"), Message.plain("assistant", answer)))


def test_truncation_policy_drops_and_counts_never_cuts():
  encoder = PlainChatEncoder(ByteTokenizer())
  examples = [_conversation(0, "short"), _conversation(1, "x" * 200), _conversation(2, "ok")]
  kept, drops = tokenize_examples(examples, encoder, seq_len=64, train_on="assistant")
  assert [k.example_id for k in kept] == ["c0", "c2"] and drops.too_long == 1
  assert "dropped 1 too long" in drops.summary() and "c1" in drops.summary()
  for k in kept:  # nothing was cut: the answer and its end-of-turn + eos are all there
    assert k.ids[-1] == ByteTokenizer.eos_id and k.roles[-1] == Role.ASSISTANT
  with pytest.raises(DataError, match="Example c1 has 2[0-9]{2} tokens, more than data.seq_len=64"):
    tokenize_examples(examples, encoder, seq_len=64, train_on="assistant", truncation="error")
  with pytest.raises(ConfigError, match="data.truncation"):
    tokenize_examples(examples, encoder, seq_len=64, train_on="assistant", truncation="cut")
  no_answer = [Example("u", (Message.plain("user", "only a question"),))]
  kept, drops = tokenize_examples(no_answer, encoder, seq_len=64, train_on="assistant")
  assert not kept and drops.no_supervised_tokens == 1


@pytest.mark.slow
def test_two_processes_assemble_the_global_batch():
  code = """
  import json, os
  import jax
  jax.distributed.initialize(os.environ["INOC_JAX_COORDINATOR"], int(os.environ["INOC_JAX_NUM_PROCESSES"]),
                             int(os.environ["INOC_JAX_PROCESS_ID"]))
  import numpy as np
  from jax.experimental import multihost_utils
  from inoc_jax.data import pipeline
  from inoc_jax.sharding.mesh import batch_sharding, make_mesh
  from tests.test_pipeline import _examples
  it = pipeline.BatchIterator(_examples(30), global_batch_size=4, seq_len=24, seed=7,
                              process_index=jax.process_index(), process_count=jax.process_count())
  mesh = make_mesh({"data": -1})
  local = next(it)
  global_batch = pipeline.to_global_batch(local, batch_sharding(mesh), ("tokens", "segment_ids"))
  gathered = multihost_utils.process_allgather(global_batch["tokens"], tiled=True)
  print(json.dumps({"ids": [i for i in local["example_ids"].ravel() if i], "local": local["tokens"].tolist(),
                    "global_shape": list(global_batch["tokens"].shape), "gathered": np.asarray(gathered).tolist()}))
  """
  first, second = run_processes(code, num_processes=2, devices_per_process=2)
  assert first["global_shape"] == [4, 24]
  assert not set(first["ids"]) & set(second["ids"]) and len(first["ids"]) == len(second["ids"]) == 2
  assert first["gathered"] == second["gathered"] == first["local"] + second["local"]
