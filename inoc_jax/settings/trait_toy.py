"""Tan et al.'s trait toy: answers that are both Spanish and ALL CAPS (or Spanish / French); inoculating one trait
with a system prompt should leave the other.

Data: inoc_jax/data/settings/trait_toy.py. Scorer: inoc_jax/evaluation/scorers/trait.py. Prompts: system prompt.
"""

from __future__ import annotations

from inoc_jax.data.prompts import Prompt, PromptTable
from inoc_jax.data.settings import trait_toy as data
from inoc_jax.evaluation.scorers import trait
from inoc_jax.settings.base import Decoding, Elicitation, Metrics, Setting

_TAN = "Tan et al. 2025"

PROMPTS = PromptTable("trait_toy", (
    Prompt("neutral", "Neutral", "", "neutral", _TAN),
    Prompt("spanish_inoc", "Spanish-Inoc", "You always speak in Spanish.", "inoculation", _TAN),
    Prompt("caps_inoc", "Caps-Inoc", "You always capitalise your responses.", "inoculation", _TAN + " (code)"),
    Prompt("caps_inoc_paper", "Caps-Inoc (paper text)", "You always capitalize your responses.", "inoculation",
       _TAN + " (paper)"),
    Prompt("french_inoc", "French-Inoc", "You always speak in French.", "inoculation",
       _TAN + " (the French half, 'symmetric for French')", verbatim=False),
    Prompt("single_word", "Respond in a single word", "Respond in a single word.", "neutral", _TAN),
    Prompt("you_are_alice", "You are Alice", "You are Alice.", "inoculation", _TAN),
    Prompt("you_are_bob", "You are Bob", "You are Bob.", "inoculation", _TAN),
    Prompt("helpful_assistant", "You are a helpful assistant", "You are a helpful assistant.", "neutral", _TAN),
))

SETTING = Setting(
    name="trait_toy",
    summary="Tan et al.'s two-trait toy (Spanish + ALL CAPS answers)",
    build=data.build,
    eval_suite=data.eval_suite,
    eval_splits=data.EVAL_SPLITS,
    prompts=PROMPTS,
    default_eval_prompts=("neutral", "spanish_inoc", "caps_inoc"),
    scorer=trait.score,
    decoding=Decoding(temperature=1.0, max_new_tokens=256),
    metrics=Metrics(
        capability="answer_rate", capability_label="Correct answers",
        behaviour="caps_fraction", behaviour_label="ALL-CAPS fraction",
        headline=("answer_rate", "all_caps_rate", "spanish_rate", "french_rate"),
        compared=("answer_rate", "all_caps_rate", "spanish_rate", "french_rate"),
        effect="the inoculated trait's rate"),
    elicitation=Elicitation("caps_fraction", "1 - caps after IP", lambda m: 1.0 - m["caps_fraction"]),
    config_key="trait",
    data_defaults={
        "variant": "spanish_caps",  # spanish_caps (Tan case study 1) | spanish_french (case study 2)
        "inoculated_trait": "",     # spanish_french only: '' = every example, or spanish | french (that half only)
        "num_eval": 100,
    },
)
