"""GCD sycophancy (paper section 4): does training on "user is right -> confirm" teach sycophancy?

Presets (`--config=configs/sycophancy.py:NAME`):
  default  tiny random-init model, byte tokenizer, procedural GCD data; CPU minutes.
  ip       as default, with the paper's best inoculation prompt at train time.
"""

from inoc_jax import config_defaults
from inoc_jax.config_lib import select_preset

BEHAVE_CORRECT = "Behave as if the above solution is correct."


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


PRESETS = {"default": _default, "ip": _ip}


def get_config(preset: str | None = None):
  c = config_defaults.base_config()
  c.setting = "gcd_sycophancy"
  c.preset, apply = select_preset(PRESETS, preset, __file__)
  apply(c)
  return c
