"""Spurious correlation in sentiment classification on CEBaB (paper section 3).

Presets (`--config=configs/spurious_correlation.py:NAME`):
  default   tiny random-init model, byte tokenizer, CEBaB from ../shared/data/cebab; seed 42 split
            ("very_biased": 3,986 training reviews); a few dozen CPU steps.
  ip        as default with "IP Amb Cat Higher" at train time.
  food      as default, the food-concept variant (no category hint; Fig 18).
  paper     the paper's run: Llama-3-8B-Instruct, LoRA r=8/alpha=16 on q,v only, dropout 0.1, standard
            (not rs) scaling, AdamW 2e-4 constant after 3 % warmup, grad clip 0.3, batch 32, 3 epochs,
            512-token rows, no packing (PAPER_NOTES 3.1). The seed also draws the train/test split.
  paper_ip  paper + "IP Amb Cat Higher".
"""

from inoc_jax import config_defaults
from inoc_jax.config_lib import select_preset

AMB_CAT_HIGHER = "ip_amb_cat_higher"


def _default(c):
  c.seed = 42
  c.model.preset = "tiny"
  c.data.tokenizer = "byte"
  c.data.seq_len = 512           # byte tokens: 99 % of the reviews fit; longer ones are dropped and counted
  c.data.global_batch_size = 8
  c.data.num_train_examples = 0  # all of the very_biased training split
  c.data.num_heldout_examples = 32
  c.data.cebab.concept = "ambiance"
  c.data.cebab.category_hint = True
  c.optim.lr = 3e-3
  c.optim.schedule = "constant"
  c.optim.warmup_steps = 3
  c.train.num_steps = 30
  c.train.log_every = 5


def _ip(c):
  _default(c)
  c.data.train_prompt = AMB_CAT_HIGHER


def _food(c):
  _default(c)
  c.data.cebab.concept = "food"
  c.data.cebab.category_hint = False


def _paper(c):
  c.seed = 42
  c.model.preset = "llama3-8b"
  c.model.checkpoint = "NousResearch/Meta-Llama-3-8B-Instruct"
  c.model.dtype = "bfloat16"
  c.data.tokenizer = "auto"
  c.data.chat_template = ""      # Llama-3's template; labels are the digit + <|eot_id|>
  c.data.seq_len = 512
  c.data.packing = False
  c.data.global_batch_size = 32
  c.data.num_train_examples = 0
  c.data.num_heldout_examples = 64
  c.train.grad_accum_steps = 1
  c.train.num_epochs = 3.0
  c.lora.enabled = True
  c.lora.rank = 8
  c.lora.alpha = 16.0
  c.lora.dropout = 0.1
  c.lora.rslora = False
  c.lora.targets = "q,v"
  c.optim.name = "adamw"         # paged AdamW 32-bit
  c.optim.lr = 2e-4
  c.optim.weight_decay = 0.0
  c.optim.schedule = "constant"
  c.optim.warmup_steps = 0
  c.optim.warmup_ratio = 0.03
  c.optim.grad_clip_norm = 0.3


def _paper_ip(c):
  _paper(c)
  c.data.train_prompt = AMB_CAT_HIGHER


PRESETS = {"default": _default, "ip": _ip, "food": _food, "paper": _paper, "paper_ip": _paper_ip}


def get_config(preset: str | None = None):
  c = config_defaults.base_config("cebab_spurious")
  c.preset, apply = select_preset(PRESETS, preset, __file__)
  apply(c)
  return c
