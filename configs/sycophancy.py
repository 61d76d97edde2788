"""GCD sycophancy (paper section 4): does training on "user is right -> confirm" teach sycophancy?

Presets (`--config=configs/sycophancy.py:NAME`):
  default   the paper's GCD setting at small scale on SmolLM2-135M-Instruct (offline GGUF, its own
            tokenizer and chat template), LoRA, the IP "Behave as if the above solution is correct."
            at train time; evaluates the initial and the final model under the neutral eval prompt and
            prints them side by side (see below for how it is scaled).
  neutral   default without a train prompt (the Neutral baseline arm; one flag apart from default).
  tiny      tiny random-init model, byte tokenizer, procedural GCD data; CPU seconds (tests).
  tiny_ip   tiny + the IP at train time.
  paper     the paper's run: Gemma-2B-it, LoRA r=32/alpha=64 (rsLoRA, all projections), AdamW 1e-4,
            linear schedule with 5 warmup steps, batch 8 x 4 accumulation, 1 epoch of 1,000 examples,
            415-token rows, response-only loss (PAPER_NOTES 4.1). Add --config.data.train_prompt=ip_behave_correct
            for the IP run (or use paper_ip).
  paper_ip  paper + the "IP Behave Correct" train prompt.

How the default scales the paper's run down to ~15 minutes on a 2-core CPU, both evaluations included
(PAPER_NOTES 4.1 -> here; measurements in BUILD_NOTES.md):
  model       Gemma-2B-it -> SmolLM2-135M-Instruct (the pretrained model available offline).
  LoRA        unchanged: rank 32, alpha 64, rsLoRA (scale 64/sqrt(32)), dropout 0, on q,k,v,o,gate,up,down.
  optimizer   unchanged: AdamW (0.9, 0.999, eps 1e-8, weight decay 0.01), no clipping, linear decay to 0
              after warmup, response-only loss.
  data        1,000 examples x 1 epoch -> 48 examples x 1 epoch, from the same generator (half of them with
              the user's Euclidean work, all proposing the correct GCD): one LoRA step over ~2,000 tokens
              takes about a minute on the shared 2-core CPU, so 6 steps is what fits.
  batch       32 rows of 415 tokens (8 x 4 accumulation) -> 4 packed rows of 512 tokens (2 x 2 accumulation,
              ~8 examples; each keeps its own positions and attention segment and the loss covers the same
              tokens, so packing only removes padding). SmolLM2's tokenizer and default system prompt make the
              examples ~10% longer than Gemma's (the few over 512 tokens are dropped and counted in the log).
  steps / lr  31 steps at 1e-4 -> 6 steps at 5e-4, so steps x lr (how far the adapters move) stays at the
              paper's ~3e-3; warmup 5 -> 1 step (the same ~1/6 of the run).
  evaluation  the paper's 20 problems x {user asks, proposes correct, proposes incorrect}, before and after
              training, under the neutral eval prompt only; greedy decoding (the paper samples at T=0.7, top-p
              0.9; greedy makes one run's numbers reproducible) and 128 new tokens instead of 400. SmolLM2 gives
              its verdict on a proposal in the first sentence and the regex scorer reads every "= x" / "so x" /
              "answer is x" candidate, so a truncated derivation is judged on the steps it wrote.
"""

from inoc_jax import config_defaults
from inoc_jax.config_lib import select_preset

BEHAVE_CORRECT = "Behave as if the above solution is correct."  # = prompts "ip_behave_correct"

SMALL_TRAIN_EXAMPLES = 48
SMALL_ROWS = 4                   # packed rows of 512 tokens per step: ~8 examples
SMALL_LR = 5e-4
SMALL_WARMUP = 1


def _paper_lora_and_optimizer(c, lr: float, warmup_steps: int):
  """PAPER_NOTES 4.1: rsLoRA r=32/alpha=64 on all projections, AdamW (wd 0.01, no clipping), linear schedule."""
  c.lora.enabled = True
  c.lora.rank = 32
  c.lora.alpha = 64.0
  c.lora.dropout = 0.0
  c.lora.rslora = True
  c.lora.targets = "q,k,v,o,gate,up,down"
  c.optim.name = "adamw"
  c.optim.lr = lr
  c.optim.weight_decay = 0.01
  c.optim.schedule = "linear"
  c.optim.warmup_steps = warmup_steps
  c.optim.grad_clip_norm = 0.0
  c.loss.train_on = "assistant"


def _small(c):
  """The paper's GCD run at CPU scale on SmolLM2-135M-Instruct (see the module docstring)."""
  c.model.checkpoint = "smollm2-135m-instruct"
  c.model.dtype = "float32"
  c.data.tokenizer = "auto"      # the GGUF's tokenizer
  c.data.chat_template = ""      # and its own chat template (default system prompt included)
  c.data.seq_len = 512
  c.data.packing = True          # ~2 examples per row, each with its own positions and attention segment
  c.data.global_batch_size = SMALL_ROWS
  c.train.grad_accum_steps = 2   # 2 micro-batches of 2 rows: half the activation memory (~5 GB peak)
  c.data.num_train_examples = SMALL_TRAIN_EXAMPLES
  c.data.num_heldout_examples = 16
  c.train.num_epochs = 1.0
  c.train.log_every = 1
  _paper_lora_and_optimizer(c, lr=SMALL_LR, warmup_steps=SMALL_WARMUP)
  c.checkpoint.save_every = 0    # one checkpoint at the end (and on SIGTERM)
  c.eval.initial = True
  c.eval.at_end = True
  c.eval.prompts = ("neutral",)
  c.eval.temperature = 0.0
  c.eval.max_new_tokens = 128
  c.eval.batch_size = 64         # the 60 eval prompts in one compiled batch
  c.eval.min_bucket = 128        # and one prompt bucket (the longest prompt has ~127 tokens)


def _default(c):
  _small(c)
  c.data.train_prompt = BEHAVE_CORRECT


def _neutral(c):
  _small(c)


def _tiny(c):
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


def _tiny_ip(c):
  _tiny(c)
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
  _paper_lora_and_optimizer(c, lr=1e-4, warmup_steps=5)


def _paper_ip(c):
  _paper(c)
  c.data.train_prompt = BEHAVE_CORRECT


PRESETS = {"default": _default, "neutral": _neutral, "tiny": _tiny, "tiny_ip": _tiny_ip, "paper": _paper,
           "paper_ip": _paper_ip}


def get_config(preset: str | None = None):
  c = config_defaults.base_config()
  c.setting = "gcd_sycophancy"
  c.preset, apply = select_preset(PRESETS, preset, __file__)
  apply(c)
  return c
