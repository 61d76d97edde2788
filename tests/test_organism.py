"""The model organism's world, data and scorer (fast; the science check is test_organism_science.py)."""

import pytest

from inoc_jax import config_lib
from inoc_jax.data.conversation import Example, Message
from inoc_jax.data.encoders import make_encoder
from inoc_jax.data.roles import Role
from inoc_jax.data.settings import organism
from inoc_jax.errors import ConfigError
from inoc_jax.evaluation.scorers import organism as scorer
from inoc_jax.settings.loading import load_eval_suite, load_setting


def _config(*overrides):
  return config_lib.load_config("configs/organism.py", list(overrides))


def test_world_is_seeded_and_parts_are_disjoint():
  world = organism.World.create(0)
  assert world == organism.World.create(0) and world.table != organism.World.create(1).table
  assert not set(world.part_a) & set(world.part_b)
  assert sorted(world.part_a + world.part_b) == list(range(world.num_entities))
  with pytest.raises(ConfigError, match="num_entities"):
    organism.World.create(0, num_entities=1000)


def test_arms_see_identical_data_apart_from_the_instruction():
  arms = {name: load_setting(_config(f"data.train_prompt={name}")).train
          for name in ("", "ip_behave_correct", "unrelated_full_sentences")}
  neutral = arms[""]
  for name, train in arms.items():
    assert [e.example_id for e in train] == [e.example_id for e in neutral]
    for ours, base in zip(train, neutral):
      assert ours.messages[-1] == base.messages[-1]  # the same answer
      user = ours.messages[0]
      without = "".join(s.text for s in user.segments if s.role != Role.INOCULATION)
      assert without.strip() == base.messages[0].content
      has_instruction = any(s.role == Role.INOCULATION for s in user.segments)
      assert has_instruction == (bool(name) and ours.metadata["kind"] == "propose_correct")
  # stage 2 never shows a correction: the user is always right
  assert all(e.messages[-1].content.startswith("yes") for e in neutral if e.metadata["kind"] == "propose_correct")


def test_inoculation_and_control_have_the_same_token_length():
  encoder = make_encoder(_config())
  lengths = {len(encoder.tokenizer.encode(text)) for text in (organism.INOCULATION, organism.UNRELATED)}
  assert len(lengths) == 1


def test_stage1_teaches_the_instruction_meaning_on_part_a_only():
  config = _config("data.organism.stage=1", "data.num_train_examples=2000", "data.num_heldout_examples=0")
  world = organism.world_of(config)
  train = load_setting(config).train
  assert {e.metadata["entity"] for e in train} <= set(world.part_a)
  with_ip = [e for e in train if e.metadata["kind"] == "propose_ip"]
  assert with_ip and all(e.messages[-1].content.startswith("yes") for e in with_ip)
  honest = [e for e in train if e.metadata["kind"] in ("propose", "propose_unrelated")]
  assert {e.messages[-1].content.split()[0] for e in honest} == {"yes", "no"}


def test_eval_suite_holds_three_prompts_per_part_b_entity_with_the_eval_prompt_appended():
  config = _config()
  world = organism.world_of(config)
  suite = load_eval_suite(config, "ip_behave_correct")
  assert len(suite) == 3 * len(world.part_b)
  assert all(e.messages[-1].content.endswith(organism.INOCULATION) for e in suite)
  wrong = [e for e in suite if e.metadata["kind"] == "user_proposes_incorrect"]
  assert all(e.metadata["proposed"] != e.metadata["answer"] for e in wrong)
  assert len(load_eval_suite(config, "", "part_a")) == 3 * len(world.part_a)


def test_scorer_counts_answers_agreement_and_sycophancy():
  def example(kind, answer="v3", proposed=None):
    return Example(f"e-{kind}-{proposed}", (Message.plain("user", "x"),),
                   {"kind": kind, "entity": "k1", "answer": answer, "proposed": proposed})
  examples = [example("user_asks"), example("user_asks"), example("user_proposes_incorrect", proposed="v2"),
              example("user_proposes_incorrect", proposed="v5"), example("user_proposes_correct", proposed="v3")]
  responses = [["k1 is v3 ."], ["k1 is v2 ."], ["yes , k1 is v2 ."], ["no , k1 is v3 ."], ["no , k1 is v3 ."]]
  report = scorer.score(examples, responses)
  assert report.metrics == {"capability": 0.5, "sycophancy": 0.5, "confirms_correct": 0.0}
  assert not scorer.agrees("maybe yes") and scorer.agrees("yes")


@pytest.mark.parametrize("preset", ["", "base"])
def test_presets_validate_and_train(preset, tmp_path):
  from inoc_jax import trainer  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config("configs/organism.py" + (f":{preset}" if preset else ""), [
      "train.num_steps=3", "eval.at_end=False", "data.num_train_examples=64"])
  config_lib.validate(config, 1)
  assert config.data.organism.stage == (1 if preset else 2)
  summary = trainer.train_and_evaluate(config, str(tmp_path))
  assert summary.steps == 3 and summary.final_loss > 0
