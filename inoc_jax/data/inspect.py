"""Show exactly what the model is trained on: `python -m inoc_jax.data.inspect --config=configs/X.py[:preset]`.

Prints rendered, tokenised examples with each token's role (system / user /
inoculation / assistant) as colours on a terminal or [ROLE]...[/ROLE] brackets
otherwise, plus per-role token counts and the supervised-token count under
`loss.train_on`. Flags: --num (examples), --split (train | heldout | eval),
--eval_prompt (for --split=eval), --tokens (mark every token boundary with '|'),
--color (auto | always | never); any --config.a.b=v override.
"""

from __future__ import annotations

import collections
import sys

from absl import app, flags
from ml_collections import config_flags

from inoc_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file, optionally ':preset'.",
                                          lock_config=False)
_NUM = flags.DEFINE_integer("num", 1, "How many examples to show.")
_SPLIT = flags.DEFINE_enum("split", "train", ["train", "heldout", "eval"], "Which examples.")
_EVAL_PROMPT = flags.DEFINE_string("eval_prompt", "", "Eval-time prompt for --split=eval (name or text; '' Neutral).")
_TOKENS = flags.DEFINE_bool("tokens", False, "Mark token boundaries with '|'.")
_COLOR = flags.DEFINE_enum("color", "auto", ["auto", "always", "never"], "Colour roles (auto: on a terminal).")

COLORS = {0: "\033[2m", 1: "\033[34m", 2: "\033[0m", 3: "\033[1;35m", 4: "\033[32m"}
RESET = "\033[0m"


def render_tokens(tokenizer, ids, roles, *, color: bool, mark_tokens: bool) -> str:
  """Runs of equal role, decoded together (keeps multi-byte characters whole), coloured or bracketed."""
  from inoc_jax.data.roles import Role  # pylint: disable=g-import-not-at-top
  pieces, run, run_role = [], [], None

  specials = set(getattr(tokenizer, "special_ids", range(getattr(tokenizer, "num_special", 0))))

  def decode(ids):  # special tokens by name (the byte tokenizer's decode would hide them)
    out, plain = [], []
    for i in ids:
      if i in specials:
        out.append(tokenizer.decode(plain) if plain else "")
        out.append(tokenizer.id_to_token(i))
        plain = []
      else:
        plain.append(i)
    return "".join(out) + (tokenizer.decode(plain) if plain else "")

  def flush():
    if not run:
      return
    text = "|".join(decode([i]) for i in run) if mark_tokens else decode(run)
    name = Role(run_role).name
    pieces.append(f"{COLORS[run_role]}{text}{RESET}" if color else f"[{name}]{text}[/{name}]")

  for token, role in zip(ids, roles):
    if role != run_role:
      flush()
      run, run_role = [], int(role)
    run.append(int(token))
  flush()
  return "".join(pieces)


def describe(example, encoded, tokenizer, train_on: str, *, color: bool, mark_tokens: bool) -> str:
  from inoc_jax.data.roles import Role  # pylint: disable=g-import-not-at-top
  from inoc_jax.training.masking import supervised_token_counts  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  counts = collections.Counter(Role(int(r)).name.lower() for r in encoded.roles)
  supervised = int(supervised_token_counts(encoded.roles[None], np.ones((1, len(encoded.ids)), np.int32),
                                           train_on)[0])
  header = (f"=== {example.example_id}  {len(encoded.ids)} tokens ({', '.join(f'{k} {v}' for k, v in counts.items())});"
            f" supervised ({train_on}): {supervised}\n    metadata: {dict(example.metadata)}")
  body = render_tokens(tokenizer, encoded.ids, encoded.roles, color=color, mark_tokens=mark_tokens)
  return f"{header}\n{body}\n"


def legend(color: bool) -> str:
  from inoc_jax.data.roles import Role  # pylint: disable=g-import-not-at-top
  if not color:
    return "roles: " + " ".join(f"[{r.name}]" for r in Role if r != Role.PAD)
  return "roles: " + " ".join(f"{COLORS[int(r)]}{r.name}{RESET}" for r in Role if r != Role.PAD)


def main(argv):
  del argv
  from inoc_jax.settings import loading as settings  # pylint: disable=g-import-not-at-top
  from inoc_jax.data.encoders import make_encoder  # pylint: disable=g-import-not-at-top
  config = _CONFIG.value
  color = _COLOR.value == "always" or (_COLOR.value == "auto" and sys.stdout.isatty())
  encoder = make_encoder(config)
  if _SPLIT.value == "eval":
    examples = settings.load_eval_suite(config, _EVAL_PROMPT.value, config.eval.split)
  else:
    data = settings.load_setting(config)
    examples = data.train if _SPLIT.value == "train" else data.heldout
  print(f"{config.setting} ({config.preset or 'default'}), {_SPLIT.value}: {len(examples)} examples; "
        f"tokenizer {getattr(encoder.tokenizer, 'name', 'byte')}; {legend(color)}\n")
  for example in examples[:_NUM.value]:
    encoded = encoder.encode(example.messages, add_generation_prompt=_SPLIT.value == "eval")
    print(describe(example, encoded, encoder.tokenizer, config.loss.train_on, color=color,
                   mark_tokens=_TOKENS.value))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(cli.friendly(main, distributed=False), flags_parser=cli.parse_flags)  # host-only tool
