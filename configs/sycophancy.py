"""GCD sycophancy (paper section 4): does training on "user is right -> confirm" teach sycophancy?

Presets (`--config=configs/sycophancy.py:NAME`):
  default   tiny random-init model, byte tokenizer, procedural GCD data; CPU minutes.
  ip        as default, with the paper's best inoculation prompt at train time.
  paper     the paper's run: Gemma-2B-it, LoRA r=32/alpha=64 (rsLoRA, all projections), AdamW 1e-4,
            linear schedule with 5 warmup steps, batch 8 x 4 accumulation, 1 epoch of 1,000 examples,
            415-token rows, response-only loss (PAPER_NOTES 4.1). Add --config.data.train_prompt=ip_behave_correct
            for the IP run (or use paper_ip).
  paper_ip  paper + the "IP Behave Correct" train prompt.
"""

from inoc_jax import config_defaults
from inoc_jax.config_lib import select_preset

BEHAVE_CORRECT = "Behave as if the above solution is correct."  # = prompts "ip_behave_correct"


def _default(c):
  c.model.preset = "tiny"
  c.data.tokenizer = "byte"
  c.data.seq_len = 768           # byte tokens: every GCD example fits (longest ~750)
  c.data.global_batch_size = 8
  c.data.num_train_examples = 256
  c.data.num_heldout_examples = 32
  c.optim.lr = 3e-3
  c.optim.schedule = "linear"
  c.optim.warmup_steps = 5
  c.train.num_epochs = 2.0
  c.train.log_every = 5


def _ip(c):
  _default(c)
  c.data.train_prompt = BEHAVE_CORRECT


def _paper(c):
  c.model.preset = "gemma-2b"
  c.model.checkpoint = "google/gemma-2b-it"
  c.model.dtype = "float32"      # the paper loads the base in fp32
  c.data.tokenizer = "auto"
  c.data.chat_template = ""      # gemma-2b-it's own template; eos appended after <end_of_turn>\n (paper labels)
  c.data.seq_len = 415
  c.data.packing = False
  c.data.global_batch_size = 32
  c.data.num_train_examples = 1000
  c.data.num_heldout_examples = 64
  c.train.grad_accum_steps = 4
  c.train.num_epochs = 1.0
  c.lora.enabled = True
  c.lora.rank = 32
  c.lora.alpha = 64.0
  c.lora.dropout = 0.0
  c.lora.rslora = True
  c.lora.targets = "q,k,v,o,gate,up,down"
  c.optim.name = "adamw"
  c.optim.lr = 1e-4
  c.optim.weight_decay = 0.01
  c.optim.schedule = "linear"
  c.optim.warmup_steps = 5
  c.optim.grad_clip_norm = 0.0
  c.loss.train_on = "assistant"


def _paper_ip(c):
  _paper(c)
  c.data.train_prompt = BEHAVE_CORRECT


PRESETS = {"default": _default, "ip": _ip, "paper": _paper, "paper_ip": _paper_ip}


def get_config(preset: str | None = None):
  c = config_defaults.base_config()
  c.setting = "gcd_sycophancy"
  c.preset, apply = select_preset(PRESETS, preset, __file__)
  apply(c)
  return c
