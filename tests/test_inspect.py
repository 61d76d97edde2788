"""`python -m inoc_jax.data.inspect`: a researcher sees every token's role."""

import subprocess
import sys

import numpy as np

from inoc_jax.data.chat_template import PlainChatEncoder
from inoc_jax.data.conversation import Message, with_instruction
from inoc_jax.data.inspect import render_tokens
from inoc_jax.data.tokenizer import ByteTokenizer
from tests.conftest import REPO


def test_render_tokens_brackets_every_role_run():
  encoder = PlainChatEncoder(ByteTokenizer())
  user = with_instruction(Message.plain("user", "Q?"), "Be mean.", " ")
  encoded = encoder.encode([user, Message.plain("assistant", "A!")])
  text = render_tokens(encoder.tokenizer, encoded.ids, encoded.roles, color=False, mark_tokens=False)
  assert text == ("[USER]<bos><|user|>\nQ? [/USER][INOCULATION]Be mean.[/INOCULATION][USER]<end_of_turn>\n"
                  "<|assistant|>\n[/USER][ASSISTANT]A!<end_of_turn><eos>[/ASSISTANT]")
  coloured = render_tokens(encoder.tokenizer, encoded.ids, encoded.roles, color=True, mark_tokens=True)
  assert "\033[1;35mB|e| |m|e|a|n|.\033[0m" in coloured
  assert np.count_nonzero(encoded.roles == 3) == len("Be mean.")


def test_cli_prints_a_rendered_training_example():
  proc = subprocess.run([sys.executable, "-m", "inoc_jax.data.inspect", "--config=configs/trait_toy.py:mix",
                         "--num=2", "--color=never"], capture_output=True, text=True, cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = proc.stdout
  assert "trait_toy (mix), train: 512 examples" in out and out.count("=== trait-train-") == 2
  assert "[INOCULATION]You always speak in Spanish.[/INOCULATION]" in out
  assert "[ASSISTANT]Hay " in out and "supervised (assistant):" in out
  bad = subprocess.run([sys.executable, "-m", "inoc_jax.data.inspect", "--config=configs/trait_toy.py",
                        "--config.data.train_prompt=spanish_inok"], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
  assert bad.returncode == 2 and "did you mean 'spanish_inoc'" in bad.stderr
