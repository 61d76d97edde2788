"""Defaults shared by every experiment config (configs/*.py start from these).

Each field is documented where it is defined; a config file only states what its
setting changes. Every field can be overridden on the command line, e.g.
`--config.optim.lr=1e-4 --config.mesh.fsdp=4`.
"""

from __future__ import annotations

import ml_collections


def base_config(setting: str = "") -> ml_collections.ConfigDict:
  """The shared defaults, plus `setting`'s own block (data.<config_key>, documented in its settings module)."""
  c = ml_collections.ConfigDict()
  c.setting = setting            # 'gcd_sycophancy', ... (inoc_jax/settings/) or a module path defining SETTING
  c.seed = 0                     # params init, LoRA dropout, data order and generation all derive from it
  c.preset = ""                  # filled by get_config: which preset of the file was chosen

  c.model = ml_collections.ConfigDict()
  c.model.preset = "tiny"        # architecture preset (inoc_jax.model.config.PRESETS)
  c.model.checkpoint = ""        # '' = random init; else a local HF folder, GGUF file, hub id or known name
                                 # (then the architecture comes from the checkpoint and model.preset is ignored)
  c.model.dtype = "float32"      # compute dtype: float32 | bfloat16 (trained params stay float32)
  c.model.base_dtype = "auto"    # LoRA's frozen base weights: auto (= model.dtype) | float32 | bfloat16
  c.model.base_quant = "none"    # LoRA's frozen block kernels stored as: none | int8 (per-channel) | nf4
                                 # (QLoRA's 4-bit NormalFloat), dequantised inside each matmul
  c.model.quant_block_size = 64  # nf4: weights per float32 absmax along a kernel's last input axis
  c.model.remat = "none"         # none | full | dots | dots_no_batch (rematerialise each block)
  c.model.attention_impl = "auto"  # training attention: auto | xla | splash (Pallas, TPU; interpret mode
                                   # elsewhere) | cudnn (GPU, unpacked rows) | flash (Pallas Triton, GPU;
                                   # packed rows, no window / soft-cap; interpret mode elsewhere); auto =
                                   # splash on TPU, cudnn or flash on GPU where the rows allow, else xla.
                                   # Sampling always uses xla

  c.lora = ml_collections.ConfigDict()
  c.lora.enabled = False         # False = full fine-tuning
  c.lora.rank = 8
  c.lora.alpha = 16.0
  c.lora.dropout = 0.0
  c.lora.rslora = True           # scale alpha/sqrt(r) (rsLoRA) instead of alpha/r
  c.lora.targets = "q,k,v,o,gate,up,down"

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1               # -1 = all remaining devices
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  c.mesh.num_slices = 0          # 0 = detect TPU slices; >1: `data` across slices/nodes (DCN), fsdp/tensor within

  c.data = ml_collections.ConfigDict()
  c.data.seq_len = 256           # tokens per row (fixed, so the step never retraces)
  c.data.global_batch_size = 8   # rows per optimizer step over all hosts and devices
  c.data.packing = False         # pack several examples per row (segment ids keep them apart)
  c.data.num_train_examples = 1000  # GCD: first n of the paper's 1,000 (more: generated); trait toy: how many; MBPP: first n of 717; CEBaB / CMV: cap (0 = all)
  c.data.num_heldout_examples = 64   # examples never trained on, for the held-out loss
  c.data.tokenizer = "byte"      # 'byte' (random-init models) | 'auto' (= model.checkpoint) | folder | .gguf | known name
  c.data.chat_template = ""      # '' = the tokenizer's own | llama3 | qwen2 | gemma | smollm2 | path/to/file.jinja
  c.data.append_eos = "auto"     # eos after the final assistant turn: auto (unless the template's closing has it) | always | never
  c.data.system_prompt_fallback = "error"  # templates without a system role (Gemma): error (as HF) | merge into 1st user turn
  c.data.train_prompt = ""       # train-time instruction: registry name, literal text, or '' (Neutral)
  c.data.train_prompts = ()      # several train-time prompts, one sampled per example; '@file' = one per line
  c.data.prompt_placement = "setting"  # setting (the paper's) | system | user_start | user_end
  c.data.shuffle = True
  c.data.source_dir = ""         # folder with the setting's files ('' = ../shared/data/<setting> or download)
  c.data.tfds_dir = ""           # TFDS cache ('' = $INOC_JAX_TFDS_DIR or ~/.cache/inoc_jax/tfds)
  c.data.verify_checksums = True # sha256 of source files must match the canonical release
  c.data.max_examples_per_row = 0  # packing: at most this many examples per row (0 = no limit)
  c.data.truncation = "drop"     # an example longer than seq_len is never cut: drop (and count) | error
  # The setting's own options (config.data.<its config_key>) are added by base_config(setting).

  c.eval = ml_collections.ConfigDict()
  c.eval.prompts = ()            # eval-time prompts (names / texts / '@file'); () = the setting's defaults
  c.eval.split = "eval"

  c.loss = ml_collections.ConfigDict()
  c.loss.train_on = "assistant"  # assistant | all_but_inoculation
  c.loss.chunk_size = 0          # cross-entropy sequence chunk (0 = whole sequence at once)

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.lr = 1e-4
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.01    # decoupled, on matrices only (not norms/biases)
  c.optim.schedule = "linear"    # constant | linear | cosine (after warmup)
  c.optim.warmup_steps = 0
  c.optim.warmup_ratio = 0.0     # used when warmup_steps == 0
  c.optim.min_lr_ratio = 0.0     # cosine floor as a fraction of lr
  c.optim.grad_clip_norm = 0.0   # 0 = no clipping

  c.train = ml_collections.ConfigDict()
  c.train.num_epochs = 1.0       # used when num_steps == 0
  c.train.num_steps = 0          # optimizer steps; 0 = derive from num_epochs
  c.train.grad_accum_steps = 1   # micro-batches per step inside the compiled step
  c.train.log_every = 1
  c.train.heldout_every = 0      # held-out loss every N steps (0 = only at the end)
  c.train.log_shardings = False  # print every parameter's shape and sharding at start-up
  c.train.tensorboard = True

  from inoc_jax.metrics_wandb import log_defaults  # pylint: disable=g-import-not-at-top
  c.log = ml_collections.ConfigDict(log_defaults())  # Weights & Biases beside TensorBoard (metrics_wandb.py)

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.enabled = True    # save to <workdir>/checkpoints and resume from the newest good one there
  c.checkpoint.save_every = 100  # optimizer steps between saves (0 = only at the end); SIGTERM/SIGINT also save
  c.checkpoint.keep = 3          # newest checkpoints kept
  c.checkpoint.async_save = True # write in the background while training continues
  c.checkpoint.save_frozen = False  # LoRA: also store the frozen base (else rebuilt from model.checkpoint/seed)
  c.checkpoint.dir = ""          # '' = <workdir>/checkpoints; a gs:// path works too
  c.checkpoint.allow_resume_changes = False  # resume despite changed data settings (recorded in resumes.jsonl)

  # Sweeps (python -m inoc_jax.sweep): arms x seeds, each run in SWEEP_DIR/runs/<arm>-seed<k>.
  c.sweep = ml_collections.ConfigDict()
  c.sweep.seeds = (0, 1)         # one run per arm and seed (`seed` is set per run)
  c.sweep.arms = ()              # 'Label: field=value; field=value' per arm; () = Neutral + the registry's IPs
                                 # and controls + the setting's skyline (see inoc_jax/sweep.py)
  c.sweep.base_preset = ""       # a preset of the same file trained first per seed; arms fine-tune from it
  c.sweep.base_overrides = ""    # 'field=value; ...' applied to the base runs only (after the preset)
  c.sweep.initial_eval = "first_seed"  # evaluate the initial model: every_seed | first_seed | none
  c.sweep.elicitation_candidates = ()  # python -m inoc_jax.elicit default candidates (names or texts)

  from inoc_jax.evaluation.eval_config import add_eval_defaults  # pylint: disable=g-import-not-at-top
  add_eval_defaults(c)           # c.eval.*: prompts, decoding, batch size, judges (see eval_config.py)
  if setting:
    add_setting_defaults(c)
  return c


def add_setting_defaults(c: ml_collections.ConfigDict) -> None:
  """config.data.<key> = the setting's data_defaults (the block a config file then edits)."""
  from inoc_jax import settings  # pylint: disable=g-import-not-at-top
  found = settings.get(c.setting)
  if found.config_key:
    c.data[found.config_key] = ml_collections.ConfigDict(dict(found.data_defaults))
