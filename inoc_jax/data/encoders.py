"""`make_encoder(config)`: the chat encoder a run trains and samples with.

  data.tokenizer = 'byte'   -> PlainChatEncoder (random-init models, no files)
  data.tokenizer = 'auto'   -> the tokenizer of model.checkpoint
  data.tokenizer = other    -> folder / .gguf / known name / hub id
  data.chat_template        -> '' (the tokenizer's own) | llama3 | qwen2 | gemma | smollm2 | file.jinja

Every encoder has `encode(messages, add_generation_prompt=False) ->
EncodedConversation(ids int32 [n], roles int8 [n])`, `tokenizer` and
`stop_token_ids`.
"""

from __future__ import annotations

import ml_collections

from inoc_jax.data.chat_template import PlainChatEncoder
from inoc_jax.data.template_encoder import TemplateChatEncoder
from inoc_jax.data.template_library import resolve_template
from inoc_jax.data.tokenizer import ByteTokenizer
from inoc_jax.data.tokenizer_loading import load_tokenizer
from inoc_jax.errors import ConfigError


def tokenizer_spec(config: ml_collections.ConfigDict) -> str:
  spec = config.data.tokenizer
  if spec == "auto":
    if not config.model.checkpoint:
      raise ConfigError("data.tokenizer='auto' uses model.checkpoint's tokenizer, but model.checkpoint is empty; "
                        "set data.tokenizer='byte' for random-init models or give a tokenizer source.")
    return config.model.checkpoint
  return spec


def make_encoder(config: ml_collections.ConfigDict):
  tokenizer = load_tokenizer(tokenizer_spec(config))
  if isinstance(tokenizer, ByteTokenizer):
    if config.data.get("chat_template", ""):
      raise ConfigError("data.chat_template needs a real tokenizer; the byte tokenizer has its own fixed template "
                        "(set data.chat_template='' or choose data.tokenizer).")
    return PlainChatEncoder(tokenizer)
  template = resolve_template(config.data.get("chat_template", ""), tokenizer.chat_template, tokenizer.name)
  return TemplateChatEncoder(tokenizer, template, append_eos=config.data.get("append_eos", "auto"),
                             system_prompt_fallback=config.data.get("system_prompt_fallback", "error"))
