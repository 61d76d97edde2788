"""GCD sycophancy (paper section 4): does training on "user is right -> confirm" teach sycophancy?

Data: the paper's own files (../shared/data/gcd_sycophancy, sha256-checked): train = the first
data.num_train_examples rows of its 1,000, held-out = the next data.num_heldout_examples, eval = its
60 test prompts (20 problems x {asks, proposes correct, proposes wrong}), --config.eval.split=ood its
421 OOD prompts (per-category table), all = both.

Presets (`--config=configs/sycophancy.py:NAME`):
  default          the paper's setting at small scale on SmolLM2-135M-Instruct (offline GGUF, its own
                   tokenizer and chat template), LoRA, the IP "Behave as if the above solution is correct."
                   at train time; evaluates the initial and the final model on the paper's 60 test prompts
                   under the neutral eval prompt and prints them side by side (scaled as below).
  neutral          default without a train prompt (the Neutral baseline arm; one flag apart from default).
  tiny             tiny random-init model, byte tokenizer, 256 of the paper's rows; CPU seconds (tests).
  tiny_ip          tiny + the IP at train time.
  paper            the paper's run: Gemma-2B-it, LoRA r=32/alpha=64 (rsLoRA, all projections), AdamW 1e-4,
                   linear schedule with 5 warmup steps, batch 8 x 4 accumulation, 1 epoch of the 1,000 rows,
                   415-token rows, response-only loss (PAPER_NOTES 4.1). paper_ip adds the IP.
  smollm2_paper    the paper's recipe as faithfully as a CPU allows, on SmolLM2-135M-Instruct: all 1,000
                   rows, ~32 examples per step (24 packed rows, 4 accumulation micro-batches), lr 1e-4, 5 warmup
                   steps, one epoch, rsLoRA r=32/alpha=64 on all projections, response-only loss; evaluated
                   on the 60 test prompts and the 421 OOD prompts with the paper's decoding (T=0.7, top-p 0.9,
                   400 new tokens). smollm2_paper_ip adds the IP. The sweep over seeds: README.

How the default scales the paper's run down to ~15 minutes on a 2-core CPU, both evaluations included
(PAPER_NOTES 4.1 -> here; measurements in BUILD_NOTES.md):
  model       Gemma-2B-it -> SmolLM2-135M-Instruct (the pretrained model available offline).
  LoRA        unchanged: rank 32, alpha 64, rsLoRA (scale 64/sqrt(32)), dropout 0, on q,k,v,o,gate,up,down.
  optimizer   unchanged: AdamW (0.9, 0.999, eps 1e-8, weight decay 0.01), no clipping, linear decay to 0
              after warmup, response-only loss.
  data        1,000 rows x 1 epoch -> the paper's first 48 rows x 1 epoch (half with the user's Euclidean
              work, all proposing the correct GCD).
  batch       32 rows of 415 tokens (8 x 4 accumulation) -> 4 packed rows of 512 tokens (2 x 2 accumulation,
              ~5 examples: SmolLM2's default system prompt makes each ~250-400 tokens; each keeps its own
              positions and attention segment and the loss covers the same tokens, so packing only removes
              padding; any example over 512 tokens is dropped and counted in the log).
  steps / lr  31 steps at 1e-4 -> 10 steps at 3e-4, so steps x lr (how far the adapters move) stays at the
              paper's ~3e-3; warmup 5 -> 2 steps (about the same share of the run).
  evaluation  the paper's 60 test prompts, before and after training, under the neutral eval prompt only;
              greedy decoding (the paper samples at T=0.7, top-p 0.9; greedy makes one run's numbers
              reproducible) and 128 new tokens instead of 400. SmolLM2 gives its verdict on a proposal in the
              first sentence and the regex scorer reads every "= x" / "so x" / "answer is x" candidate, so a
              truncated derivation is judged on the steps it wrote.
"""

from inoc_jax import config_defaults
from inoc_jax.config_lib import select_preset

BEHAVE_CORRECT = "Behave as if the above solution is correct."  # = prompts "ip_behave_correct"

SMALL_TRAIN_EXAMPLES = 48
SMALL_ROWS = 4                   # packed rows of 512 tokens per step: ~5 of the paper's examples
SMALL_LR = 3e-4
SMALL_WARMUP = 2


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


def _smollm2_packed(c):
  """SmolLM2-135M-Instruct from the offline GGUF, its tokenizer and template, packed 512-token rows."""
  c.model.checkpoint = "smollm2-135m-instruct"
  c.model.dtype = "float32"
  c.data.tokenizer = "auto"      # the GGUF's tokenizer
  c.data.chat_template = ""      # and its own chat template (default system prompt included)
  c.data.seq_len = 512
  c.data.packing = True          # 1-3 examples per row, each with its own positions and attention segment


def _small(c):
  """The paper's GCD run at CPU scale on SmolLM2-135M-Instruct (see the module docstring)."""
  _smollm2_packed(c)
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
  c.eval.min_bucket = 160        # and one prompt bucket (the longest test prompt has ~150 tokens)


def _default(c):
  _small(c)
  c.data.train_prompt = BEHAVE_CORRECT


def _neutral(c):
  _small(c)


def _tiny(c):
  c.model.preset = "tiny"
  c.data.tokenizer = "byte"
  c.data.seq_len = 832           # byte tokens: every paper row fits, the IP included (longest ~830)
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


def _smollm2_paper(c):
  """The paper's recipe on SmolLM2-135M-Instruct (module docstring); one run is one arm and one seed."""
  _smollm2_packed(c)
  # rows per step: a packed 512-token row holds ~1.4 of these examples (measured: 12 rows gave 61 steps for
  # 1,000), so 24 rows are ~34 examples: 29 steps per epoch (measured), the paper has 8 x 4 and 31
  c.data.global_batch_size = 24
  c.train.grad_accum_steps = 4   # 6 rows per micro-batch
  c.data.num_train_examples = 1000
  c.data.num_heldout_examples = 0  # the paper trains on all 1,000 and evaluates on the test files
  c.train.num_epochs = 1.0
  c.train.log_every = 1
  _paper_lora_and_optimizer(c, lr=1e-4, warmup_steps=5)
  c.checkpoint.save_every = 8
  c.eval.initial = False         # the initial model's numbers are one shared run (see the README's sweep)
  c.eval.at_end = True
  c.eval.split = "all"           # the 60 test prompts and the 421 OOD prompts
  c.eval.prompts = ("neutral",)
  c.eval.temperature = 0.7       # the paper's decoding
  c.eval.top_p = 0.9
  c.eval.max_new_tokens = 400
  c.eval.batch_size = 64


def _smollm2_paper_ip(c):
  _smollm2_paper(c)
  c.data.train_prompt = BEHAVE_CORRECT


PRESETS = {"default": _default, "neutral": _neutral, "tiny": _tiny, "tiny_ip": _tiny_ip, "paper": _paper,
           "paper_ip": _paper_ip, "smollm2_paper": _smollm2_paper, "smollm2_paper_ip": _smollm2_paper_ip}


def get_config(preset: str | None = None):
  c = config_defaults.base_config("gcd_sycophancy")
  c.preset, apply = select_preset(PRESETS, preset, __file__)
  apply(c)
  return c
