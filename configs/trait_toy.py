"""A procedural Spanish / French x ALL-CAPS analogue of Tan et al.'s trait inoculation (PAPER_NOTES 8).

Presets (`--config=configs/trait_toy.py:NAME`):
  default         tiny random-init model, byte tokenizer; answers Spanish + ALL CAPS; CPU minutes.
  caps_ip         as default with "Caps-Inoc" as the training system prompt (expect Spanish, not caps).
  spanish_ip      as default with "Spanish-Inoc".
  mix             Spanish/French mixture; "Spanish-Inoc" on the Spanish half only (case study 2).
  paper           Tan et al. fine-tuned GPT-4.1 through an API ("auto" settings), which cannot be matched;
                  this preset follows the third-party small-model replication [X]: Qwen2.5-7B-Instruct
                  (the qwen2-7b architecture), LoRA, effective batch 32, LR 1e-4, 1 epoch. [X] does not state
                  the LoRA rank; r=32/alpha=64 is an assumption.
"""

from inoc_jax import config_defaults
from inoc_jax.config_lib import select_preset


def _default(c):
  c.model.preset = "tiny"
  c.data.tokenizer = "byte"
  c.data.seq_len = 256
  c.data.global_batch_size = 8
  c.data.num_train_examples = 512
  c.data.num_heldout_examples = 32
  c.data.trait.variant = "spanish_caps"
  c.optim.lr = 3e-3
  c.optim.schedule = "linear"
  c.optim.warmup_steps = 5
  c.train.num_epochs = 1.0
  c.train.log_every = 5


def _caps_ip(c):
  _default(c)
  c.data.train_prompt = "caps_inoc"


def _spanish_ip(c):
  _default(c)
  c.data.train_prompt = "spanish_inoc"


def _mix(c):
  _default(c)
  c.data.trait.variant = "spanish_french"
  c.data.trait.inoculated_trait = "spanish"
  c.data.train_prompt = "spanish_inoc"


def _paper(c):
  c.model.preset = "qwen2-7b"
  c.model.checkpoint = "Qwen/Qwen2.5-7B-Instruct"
  c.model.dtype = "bfloat16"
  c.data.tokenizer = "auto"
  c.data.chat_template = ""
  c.data.seq_len = 512
  c.data.global_batch_size = 32
  c.data.num_train_examples = 7473  # the size of GSM8K train, Tan et al.'s source
  c.train.num_epochs = 1.0
  c.lora.enabled = True
  c.lora.rank = 32
  c.lora.alpha = 64.0
  c.lora.rslora = True
  c.optim.name = "adamw"
  c.optim.lr = 1e-4
  c.optim.schedule = "linear"
  c.optim.warmup_steps = 10


PRESETS = {"default": _default, "caps_ip": _caps_ip, "spanish_ip": _spanish_ip, "mix": _mix, "paper": _paper}


def get_config(preset: str | None = None):
  c = config_defaults.base_config("trait_toy")
  c.preset, apply = select_preset(PRESETS, preset, __file__)
  apply(c)
  return c
