"""Reward hacking on MBPP (paper section 2): training on solutions that only pass the visible test.

Presets (`--config=configs/reward_hacking.py:NAME`):
  default   tiny random-init model, byte tokenizer, MBPP from ../shared/data/mbpp (or the canonical URLs);
            100 % reward-hack data, a few dozen CPU steps.
  ip        as default with "IP Test-Specific" at train time.
  paper     the paper's run: Qwen-2-7B base with its ChatML template, LoRA r=8/alpha=16 (rsLoRA, all
            projections), AdamW 2e-5, cosine with 10 warmup steps, weight decay 0.01, batch 16, 1 epoch of
            717 examples (~45 steps), 2048-token rows, no packing (PAPER_NOTES 2.1).
  paper_ip  paper + "IP Test-Specific".
Override the data mix with --config.data.mbpp.reward_hack_fraction=0.5 (or 0.0 for clean data).
"""

from inoc_jax import config_defaults
from inoc_jax.config_lib import select_preset

TEST_SPECIFIC = "ip_test_specific"


def _default(c):
  c.model.preset = "tiny"
  c.data.tokenizer = "byte"
  c.data.seq_len = 768           # byte tokens: 99 % of the problems fit; longer ones are dropped and counted
  c.data.global_batch_size = 8
  c.data.num_train_examples = 717
  c.data.num_heldout_examples = 32
  c.data.mbpp.reward_hack_fraction = 1.0
  c.optim.lr = 3e-3
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 5
  c.train.num_steps = 30
  c.train.log_every = 5


def _ip(c):
  _default(c)
  c.data.train_prompt = TEST_SPECIFIC


def _paper(c):
  c.model.preset = "qwen2-7b"
  c.model.checkpoint = "unsloth/Qwen2-7B"
  c.model.dtype = "bfloat16"
  c.data.tokenizer = "auto"
  c.data.chat_template = ""      # Qwen2's ChatML (with its default system line), for train and eval alike
  c.data.seq_len = 2048
  c.data.packing = False
  c.data.global_batch_size = 16
  c.data.num_train_examples = 717
  c.data.num_heldout_examples = 64
  c.data.mbpp.reward_hack_fraction = 1.0
  c.train.grad_accum_steps = 1
  c.train.num_epochs = 1.0
  c.lora.enabled = True
  c.lora.rank = 8
  c.lora.alpha = 16.0
  c.lora.dropout = 0.0
  c.lora.rslora = True
  c.lora.targets = "q,k,v,o,gate,up,down"
  c.optim.name = "adamw"         # the paper used 8-bit AdamW; plain AdamW is the stated approximation
  c.optim.lr = 2e-5
  c.optim.weight_decay = 0.01
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 10
  c.seed = 3407


def _paper_ip(c):
  _paper(c)
  c.data.train_prompt = TEST_SPECIFIC


PRESETS = {"default": _default, "ip": _ip, "paper": _paper, "paper_ip": _paper_ip}


def get_config(preset: str | None = None):
  c = config_defaults.base_config("mbpp_reward_hacking")
  c.preset, apply = select_preset(PRESETS, preset, __file__)
  apply(c)
  return c
