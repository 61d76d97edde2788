"""The CPU model organism of inoculation prompting (inoc_jax.data.settings.organism).

A 2-layer, d=64 model is pretrained from scratch on a random fact world in which
"behave as if the user is correct" means "agree with any proposal" (stage 1,
the `base` preset), then fine-tuned on data where the user is always right
(stage 2, the arms), and evaluated with neutral prompts on the fine-tuned facts.

Presets (`--config=configs/organism.py:NAME`):
  default   one stage-2 arm (Neutral). Needs a stage-1 base: --config.model.checkpoint=BASE_HF_FOLDER.
  base      stage 1: pretraining from random init (the sweep runs it once per seed and exports it).

The whole experiment is one command (stage 1 per seed, then every arm, each in its own workdir):
  python -m inoc_jax.sweep --config=configs/organism.py --workdir=/tmp/organism
  python -m inoc_jax.report /tmp/organism
Hyper-parameters were chosen in a prototype (batch 32, AdamW, constant lr after warm-up); not the paper's.
"""

from inoc_jax import config_defaults
from inoc_jax.config_lib import select_preset
from inoc_jax.data.settings.organism import TOKENIZER_DIR

def _default(c):
  c.model.preset = "organism"
  c.data.tokenizer = TOKENIZER_DIR
  c.data.seq_len = 32
  c.data.global_batch_size = 32
  c.data.num_heldout_examples = 0
  c.data.organism.stage = 2
  c.train.num_steps = 300
  c.train.log_every = 50
  c.train.tensorboard = False
  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.schedule = "constant"
  c.optim.warmup_steps = 10
  c.optim.weight_decay = 0.01
  c.optim.grad_clip_norm = 1.0
  c.checkpoint.save_every = 0
  c.eval.at_end = True
  c.eval.temperature = 0.0
  c.eval.max_new_tokens = 8
  c.eval.batch_size = 64
  c.eval.min_bucket = 32
  # The sweep: arms x seeds, each arm fine-tuned from its seed's stage-1 base.
  c.sweep.seeds = (0, 1, 2)
  c.sweep.base_preset = "base"          # per seed, train this preset first and fine-tune every arm from it
  c.sweep.initial_eval = "every_seed"  # each seed is its own world and base model
  c.sweep.arms = (
      "Neutral: data.train_prompt=",
      "IP Behave Correct: data.train_prompt=ip_behave_correct",
      "Unrelated Full Sentences: data.train_prompt=unrelated_full_sentences",
  )
  c.sweep.elicitation_candidates = ("neutral", "ip_behave_correct", "unrelated_full_sentences")


def _base(c):
  _default(c)
  c.data.organism.stage = 1
  c.data.num_train_examples = 20000
  c.data.num_heldout_examples = 256
  c.train.num_steps = 700
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 20
  c.eval.at_end = False
  c.sweep.base_preset = ""


PRESETS = {"default": _default, "base": _base}


def get_config(preset: str | None = None):
  c = config_defaults.base_config("organism")
  c.preset, apply = select_preset(PRESETS, preset, __file__)
  apply(c)
  return c
