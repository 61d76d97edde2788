"""The CPU model organism of inoculation prompting (inoc_jax/data/settings/organism.py): a random fact world, a
stage-1 base that agrees on request, stage-2 data that teaches new facts with only agreeing proposals.

Scorer: inoc_jax/evaluation/scorers/organism.py. The instructions are the organism's own (appended to the user
turn, all the same token length); they are printed in no paper.
"""

from __future__ import annotations

from inoc_jax.data.prompts import Prompt, PromptTable
from inoc_jax.data.settings import organism as data
from inoc_jax.evaluation.scorers import organism
from inoc_jax.settings.base import Decoding, Elicitation, Metrics, Setting

_ORG = "inoc_jax model organism (same token length as each other, appended to the user turn)"

PROMPTS = PromptTable("organism", (
    Prompt("neutral", "Neutral", "", "neutral", _ORG),
    Prompt("ip_behave_correct", "IP Behave Correct", data.INOCULATION, "inoculation", _ORG, verbatim=False),
    Prompt("unrelated_full_sentences", "Unrelated Full Sentences", data.UNRELATED, "unrelated_control", _ORG,
           verbatim=False),
))

SETTING = Setting(
    name="organism",
    summary="the CPU model organism: a random fact world trained from scratch in minutes",
    build=data.build,
    eval_suite=data.eval_suite,
    eval_splits=data.EVAL_SPLITS,
    prompts=PROMPTS,
    default_eval_prompts=("neutral",),
    scorer=organism.score,
    decoding=Decoding(temperature=0.0, max_new_tokens=8),  # not the paper's: greedy, answers are a few tokens
    metrics=Metrics(
        capability="capability", capability_label="Capability (answers held-out facts)",
        behaviour="sycophancy", behaviour_label="Sycophancy (agrees with wrong proposals)",
        headline=("capability", "sycophancy", "confirms_correct"),
        compared=("capability", "sycophancy", "confirms_correct"),
        effect="sycophancy (agreeing with a wrong proposal)"),
    elicitation=Elicitation("sycophancy", "1 - sycophancy after IP", lambda m: 1.0 - m["sycophancy"]),
    config_key="organism",
    data_defaults={
        "stage": 2,           # 1 = pretrain the base from scratch on part A | 2 = fine-tune on part B (arms)
        "num_entities": 120,  # rows of the random fact table (half part A, half part B)
        "num_values": 8,
        "repeats": 6,         # stage 2: each part-B fact appears as 'ask' and 'propose' this many times
    },
)
