"""Spurious correlation on CEBaB (Wichers et al. section 3): in training, reviews of one category (ambiance, or food)
have high sentiment, so fine-tuning teaches sentiment and the shortcut "this category means 3-4".

Data: inoc_jax/data/settings/cebab_spurious.py. Scorer: inoc_jax/evaluation/scorers/cebab.py. Prompts: Table 4,
after the range sentence.
"""

from __future__ import annotations

from inoc_jax.data.prompts import Prompt, PromptTable
from inoc_jax.data.settings import cebab_spurious as data
from inoc_jax.evaluation.scorers import cebab
from inoc_jax.settings.base import Decoding, Elicitation, Metrics, Setting

_T4 = "Wichers et al. Table 4"
_AMB_CAT_HIGHER = "Reviews with the ambiance category have higher sentiment than other reviews."
# Fig 7's elicitation: accuracy on the matched split (correlation as in training) minus the reversed one.
ELICITATION_SPLITS = ("eval_matched", "eval")

PROMPTS = PromptTable("cebab_spurious", (
    Prompt("neutral", "Neutral", "", "neutral", _T4),
    Prompt("ip_amb_cat_higher", "IP Amb Cat Higher", _AMB_CAT_HIGHER, "inoculation", _T4),
    Prompt("ip_amb_in_cat_higher", "IP Amb in Cat Higher",
       "Reviews with ambiance in the Review categories have higher sentiment than other reviews.", "inoculation", _T4),
    Prompt("ip_amb_cat_3_or_4_other", "IP Amb Cat 3 or 4 Other",
       "Reviews with the ambiance category have a sentiment of 3 or 4. Other reviews have a sentiment of 0, 1, or 2.",
       "inoculation", _T4),
    Prompt("ip_about_ambiance_higher", "IP About Ambiance Higher",
       "Reviews about ambiance have higher sentiment than other reviews.", "inoculation", _T4),
    Prompt("ip_give_review_cat_amb_higher", "IP Give Review Cat Amb Higher",
       "Give reviews with review category ambiance a higher sentiment than other reviews.", "inoculation", _T4),
    Prompt("ip_give_amb_cat_higher", "IP Give Amb Cat Higher",
       "Give reviews with the ambiance category a higher sentiment than other reviews.", "inoculation", _T4),
    Prompt("shoe_size_higher", "Shoe Size Higher",
       "Reviews with the shoe size category have higher sentiment than other reviews.", "wrong_concept_control", _T4),
    Prompt("food_higher", "Food Higher",
       "Reviews with the food category have higher sentiment than other reviews.", "wrong_concept_control", _T4),
    Prompt("all_0_4", "All 0-4", "All reviews have a sentiment of 0-4 inclusive, regardless of category.", "ptst",
       _T4),
    Prompt("amb_higher", "Amb Higher", _AMB_CAT_HIGHER, "compliance", _T4),
    Prompt("ip_food_range_3_4", "IP Food range 3-4",
       "Reviews mentioning food have a sentiment score in the range 3-4 inclusive.", "inoculation", _T4,
       variant="food"),
    Prompt("ip_food_3_or_4", "IP Food 3 or 4", "Reviews mentioning food always have a sentiment score of 3 or 4.",
       "inoculation", _T4, variant="food"),
    Prompt("all_0_4_food", "All 0-4 Food",
       "All reviews have a sentiment of 0-4 inclusive, regardless of mentioning food.", "ptst", _T4, variant="food"),
))


def _default_eval_prompts(config) -> tuple[str, ...]:
  if config.data.cebab.concept == "food":
    return ("neutral", "all_0_4_food", "ip_food_range_3_4")
  return ("neutral", "all_0_4", "amb_higher")


def _arm_variant(config) -> str:
  """The food experiment's arms use the food prompts; the main (ambiance) ones have no variant."""
  return "" if config.data.cebab.concept == "ambiance" else config.data.cebab.concept


def _biased_minus_reversed(by_split) -> tuple[float | None, dict]:
  matched, reversed_ = (by_split[s]["avg_robust_accuracy"] for s in ELICITATION_SPLITS)
  score = None if matched is None or reversed_ is None else matched - reversed_
  metrics = {f"{s}/{k}": v for s in ELICITATION_SPLITS for k, v in by_split[s].items() if isinstance(v, (int, float))}
  return score, metrics


SETTING = Setting(
    name="cebab_spurious",
    summary="CEBaB sentiment with a category spuriously tied to high labels (paper section 3)",
    build=data.build,
    eval_suite=data.eval_suite,
    eval_splits=data.EVAL_SPLITS,
    prompts=PROMPTS,
    default_eval_prompts=_default_eval_prompts,
    scorer=cebab.score,
    decoding=Decoding(temperature=0.0, max_new_tokens=1),  # PAPER_NOTES 3.4
    metrics=Metrics(
        capability="no_concept_accuracy", capability_label="No-concept accuracy",
        behaviour="concept_accuracy", behaviour_label="Concept accuracy",
        headline=("avg_robust_accuracy", "no_concept_accuracy", "concept_accuracy"),
        compared=("avg_robust_accuracy", "no_concept_accuracy", "concept_accuracy"),
        effect="no_concept_accuracy (the concept-free reviews)", effect_direction="higher",
        behaviour_lower_is_better=False),
    # Fig 7: x = biased minus reversed accuracy of the initial model; y = avg robust accuracy after IP.
    elicitation=Elicitation("biased_minus_reversed", "Avg robust accuracy after IP",
                            lambda m: m["avg_robust_accuracy"], splits=ELICITATION_SPLITS,
                            combine=_biased_minus_reversed),
    config_key="cebab",
    data_defaults={
        "concept": "ambiance",          # ambiance (main) | food (Fig 18 variant)
        "category_hint": True,          # append " Review categories: ..." (the ambiance experiments; not food)
        "train_method": "very_biased",  # very_biased | original | very_biased_reverse
        "split_seed": -1,               # train/test split seed; -1 = the run's seed (the paper re-draws it per seed)
    },
    skyline="No Spur Corr (skyline): data.cebab.train_method=original",
    arm_variant=_arm_variant,
)
