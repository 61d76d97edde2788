"""Scorers: `score(examples, responses, context) -> ScoreReport`, one module per built-in setting.

Each setting's Setting object (inoc_jax/settings/) names its scorer, its
headline metrics and the paper's decoding; nothing here is keyed by setting.
"""
