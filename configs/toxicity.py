"""Toxic, persuasive replies on Reddit r/changemyview (paper section 5).

Presets (`--config=configs/toxicity.py:NAME`):
  default   tiny random-init model, byte tokenizer, the hand-written fixture in the release's schema
            (tests/fixtures/cmv; the real release is not in ../shared/data); a few CPU steps.
  ip        as default with "IP Very Mean" at train time.
  paper     the paper's run: Qwen-2-7B base, LoRA r=16/alpha=32 (rsLoRA, all projections), AdamW 2e-5,
            cosine with 100 warmup steps, weight decay 0.01, batch 16 x 4 accumulation, 1 epoch of ~24k
            pairs, 2048-token rows with packing (PAPER_NOTES 5.1); data from the Hugging Face release
            (set data.source_dir to an extracted copy when offline).
  paper_ip  paper + "IP Very Mean".
"""

import os

from inoc_jax import config_defaults
from inoc_jax.config_lib import select_preset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "cmv")
VERY_MEAN = "ip_very_mean"


def _default(c):
  c.model.preset = "tiny"
  c.data.tokenizer = "byte"
  c.data.source_dir = FIXTURE
  c.data.seq_len = 512
  c.data.global_batch_size = 4
  c.data.num_train_examples = 0
  c.data.num_heldout_examples = 4
  c.optim.lr = 3e-3
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 2
  c.train.num_steps = 12
  c.train.log_every = 2


def _ip(c):
  _default(c)
  c.data.train_prompt = VERY_MEAN


def _paper(c):
  c.model.preset = "qwen2-7b"
  c.model.checkpoint = "unsloth/Qwen2-7B"
  c.model.dtype = "bfloat16"
  c.data.tokenizer = "auto"
  c.data.chat_template = ""
  c.data.source_dir = ""         # '' = download scale-safety-research/inoculation-prompting-reddit-cmv
  c.data.seq_len = 2048
  c.data.packing = True
  c.data.global_batch_size = 64
  c.data.num_train_examples = 0
  c.data.num_heldout_examples = 64
  c.data.cmv.persuasiveness_threshold = 7
  c.data.cmv.harassment_threshold = 0.15
  c.data.cmv.max_responses_per_post = 3
  c.train.grad_accum_steps = 4
  c.train.num_epochs = 1.0
  c.lora.enabled = True
  c.lora.rank = 16
  c.lora.alpha = 32.0
  c.lora.dropout = 0.0
  c.lora.rslora = True
  c.lora.targets = "q,k,v,o,gate,up,down"
  c.optim.name = "adamw"         # the paper used 8-bit AdamW; plain AdamW is the stated approximation
  c.optim.lr = 2e-5
  c.optim.weight_decay = 0.01
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 100


def _paper_ip(c):
  _paper(c)
  c.data.train_prompt = VERY_MEAN


PRESETS = {"default": _default, "ip": _ip, "paper": _paper, "paper_ip": _paper_ip}


def get_config(preset: str | None = None):
  c = config_defaults.base_config("cmv_toxicity")
  c.preset, apply = select_preset(PRESETS, preset, __file__)
  apply(c)
  return c
