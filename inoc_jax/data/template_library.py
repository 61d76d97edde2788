"""The official chat templates of the model families the paper uses, shipped so no Hub is needed.

Each string is the `chat_template` of the cited model's `tokenizer_config.json`
(public text), character for character. `data.chat_template` may name one of
these, point to a .jinja file, or stay '' to use the tokenizer's own template.
"""

from __future__ import annotations

import os

from inoc_jax.errors import ConfigError

# meta-llama/Meta-Llama-3-8B-Instruct (also NousResearch/Meta-Llama-3-8B-Instruct, the paper's copy).
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Qwen/Qwen2-7B and Qwen/Qwen2-7B-Instruct (ChatML with a default system line).
QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# google/gemma-2b-it (Gemma 1; no system role: the template raises, as in transformers).
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# HuggingFaceTB/SmolLM2-135M-Instruct (ChatML with its own default system line).
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TEMPLATES = {"llama3": LLAMA3, "qwen2": QWEN2, "gemma": GEMMA, "smollm2": SMOLLM2}

SOURCES = {
    "llama3": "meta-llama/Meta-Llama-3-8B-Instruct",
    "qwen2": "Qwen/Qwen2-7B-Instruct",
    "gemma": "google/gemma-2b-it",
    "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
}


def resolve_template(spec: str, tokenizer_template: str | None, tokenizer_name: str) -> str:
  """data.chat_template ('' | family name | .jinja path) -> template text."""
  if not spec:
    if not tokenizer_template:
      raise ConfigError(f"The tokenizer {tokenizer_name} has no chat template; set data.chat_template to one of "
                        f"{', '.join(TEMPLATES)} or a .jinja file.")
    return tokenizer_template
  if spec in TEMPLATES:
    return TEMPLATES[spec]
  if spec.endswith(".jinja") or os.path.sep in spec:
    if not os.path.isfile(spec):
      raise ConfigError(f"data.chat_template file {spec!r} does not exist; give a .jinja file or one of "
                        f"{', '.join(TEMPLATES)}.")
    with open(spec, encoding="utf-8") as f:
      return f.read()
  raise ConfigError(f"data.chat_template {spec!r} is unknown; use '' (the tokenizer's own), one of "
                    f"{', '.join(TEMPLATES)}, or a path to a .jinja file.")
