"""The data builders of the built-in settings: one module per setting, each with

  build(config, prompt_pool) -> (train, heldout)      lists of conversation.Example
  eval_suite(config, eval_prompt_text, split) -> list[Example]
  EVAL_SPLITS

Which setting uses which builder, and everything else about a setting, is
declared by its Setting object (inoc_jax/settings/); load data through
inoc_jax.settings.loading.
"""
