"""Every setting's config: the default preset builds its data offline and trains; paper presets hold the paper's numbers."""

import json
import os

import pytest

from inoc_jax import config_lib, trainer
from tests.conftest import REPO

CONFIGS = ("sycophancy", "reward_hacking", "spurious_correlation", "toxicity", "trait_toy")
SETTINGS = {"sycophancy": "gcd_sycophancy", "reward_hacking": "mbpp_reward_hacking",
            "spurious_correlation": "cebab_spurious", "toxicity": "cmv_toxicity", "trait_toy": "trait_toy"}


def _load(name, preset="", *overrides):
  path = os.path.join(REPO, "configs", f"{name}.py") + (f":{preset}" if preset else "")
  return config_lib.load_config(path, list(overrides))


@pytest.mark.parametrize("name", CONFIGS)
def test_default_preset_builds_data_offline_and_trains(name, tmp_path):
  config = _load(name, "", "train.num_steps=2", "data.num_heldout_examples=4", "train.log_every=1")
  assert config.setting == SETTINGS[name] and config.data.tokenizer == "byte" and config.model.preset == "tiny"
  summary = trainer.train_and_evaluate(config, str(tmp_path))
  assert summary.steps == 2 and summary.heldout_loss is not None
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in records if "train/loss" in r] == [1, 2]
  assert all(r["train/supervised_token_count"] > 0 for r in records if "train/loss" in r)


PAPER = {  # PAPER_NOTES 2.1, 3.1, 4.1, 5.1
    "reward_hacking": dict(preset="qwen2-7b", rank=8, alpha=16.0, rslora=True, dropout=0.0, lr=2e-5,
                           schedule="cosine", warmup=10, batch=16, accum=1, epochs=1.0, seq_len=2048, packing=False),
    "spurious_correlation": dict(preset="llama3-8b", rank=8, alpha=16.0, rslora=False, dropout=0.1, lr=2e-4,
                                 schedule="constant", warmup=0, batch=32, accum=1, epochs=3.0, seq_len=512,
                                 packing=False),
    "sycophancy": dict(preset="gemma-2b", rank=32, alpha=64.0, rslora=True, dropout=0.0, lr=1e-4,
                       schedule="linear", warmup=5, batch=32, accum=4, epochs=1.0, seq_len=415, packing=False),
    "toxicity": dict(preset="qwen2-7b", rank=16, alpha=32.0, rslora=True, dropout=0.0, lr=2e-5,
                     schedule="cosine", warmup=100, batch=64, accum=4, epochs=1.0, seq_len=2048, packing=True),
}


@pytest.mark.parametrize("name", list(PAPER))
def test_paper_presets_hold_the_papers_hyper_parameters(name):
  c = _load(name, "paper")
  want = PAPER[name]
  got = dict(preset=c.model.preset, rank=c.lora.rank, alpha=c.lora.alpha, rslora=c.lora.rslora,
             dropout=c.lora.dropout, lr=c.optim.lr, schedule=c.optim.schedule, warmup=c.optim.warmup_steps,
             batch=c.data.global_batch_size, accum=c.train.grad_accum_steps, epochs=c.train.num_epochs,
             seq_len=c.data.seq_len, packing=c.data.packing)
  assert got == want
  assert c.lora.enabled and c.data.tokenizer == "auto" and c.model.checkpoint
  config_lib.validate(c, num_devices=1)
  assert _load(name, "paper_ip").data.train_prompt.startswith(("ip_", "Behave as if"))


def test_spurious_paper_specifics_and_trait_presets():
  c = _load("spurious_correlation", "paper")
  assert c.lora.targets == "q,v" and c.optim.grad_clip_norm == 0.3 and c.optim.warmup_ratio == 0.03 and c.seed == 42
  mix = _load("trait_toy", "mix")
  assert mix.data.trait.variant == "spanish_french" and mix.data.trait.inoculated_trait == "spanish"
  config_lib.validate(_load("trait_toy", "paper"), num_devices=1)


def test_prompt_overrides_from_the_command_line(tmp_path):
  prompt_file = tmp_path / "ips.txt"
  prompt_file.write_text("ip_act_correct\nip_behave_correct\n")
  c = _load("sycophancy", "", f"data.train_prompts=('@{prompt_file}', 'Pretend it is right.')",
            "eval.prompts=('neutral', 'maybe_wrong')")
  assert c.data.train_prompts == (f"@{prompt_file}", "Pretend it is right.")
  assert c.eval.prompts == ("neutral", "maybe_wrong")


def test_data_mistakes_are_caught_by_validate():
  c = _load("sycophancy", "", "data.truncation=cut", "data.prompt_placement=middle")
  with pytest.raises(config_lib.ConfigError, match="data.truncation must be one of drop, error; data.prompt_placement"):
    config_lib.validate(c, num_devices=1)
  c = _load("reward_hacking", "", "data.train_prompt=ip_test_specifc")
  with pytest.raises(config_lib.ConfigError, match="did you mean 'ip_test_specific'"):
    config_lib.validate(c, num_devices=1)
