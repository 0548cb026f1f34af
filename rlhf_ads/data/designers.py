"""The bundled data's simulated designers: each a taste (weights over the six gold features, summing to 1) and a
`sharpness`, the Bradley-Terry scale of their choices (higher: more consistent). Designer d picks ad a over ad b with
probability sigmoid(sharpness_d * (U_d(a) - U_d(b))), U_d the designer-weighted utility (data card:
rlhf_ads/data/bundled/README.md). `scripts/make_dataset.py` drew the bundled preferences with them;
`rlhf-ads annotate simulate` lets them label new pairs, a stand-in for people on the bundled data only."""

from __future__ import annotations

import math

from rlhf_ads.data.gold import FEATURES, POPULATION_WEIGHTS, weighted_utility

DESIGNERS = {
    "d01_specifics": dict(specificity=0.35, keyword_use=0.15, call_to_action=0.1, length_fit=0.2, tone_match=0.05, policy_clean=0.15, sharpness=24.0),
    "d02_seo": dict(specificity=0.15, keyword_use=0.35, call_to_action=0.1, length_fit=0.2, tone_match=0.05, policy_clean=0.15, sharpness=22.0),
    "d03_conversion": dict(specificity=0.15, keyword_use=0.15, call_to_action=0.3, length_fit=0.2, tone_match=0.05, policy_clean=0.15, sharpness=22.0),
    "d04_brand_voice": dict(specificity=0.15, keyword_use=0.1, call_to_action=0.1, length_fit=0.2, tone_match=0.3, policy_clean=0.15, sharpness=20.0),
    "d05_compliance": dict(specificity=0.15, keyword_use=0.15, call_to_action=0.1, length_fit=0.25, tone_match=0.05, policy_clean=0.3, sharpness=26.0),
    "d06_balanced": dict(POPULATION_WEIGHTS, sharpness=23.0),
    "d07_hurried": dict(POPULATION_WEIGHTS, sharpness=12.0),
    "d08_layout": dict(specificity=0.15, keyword_use=0.15, call_to_action=0.1, length_fit=0.35, tone_match=0.1, policy_clean=0.15, sharpness=23.0),
}


def designer_weights(designer: str) -> dict[str, float]:
    """The designer's weight on each gold feature."""
    return {k: DESIGNERS[designer][k] for k in FEATURES}


def feature_utility(designer: str, features: dict[str, float], text: str) -> float:
    """U_d of an ad whose gold features are `features`."""
    return weighted_utility(features, designer_weights(designer), text)


def first_preferred(designer: str, utility_a: float, utility_b: float) -> float:
    """P(designer picks a over b) = sigmoid(sharpness * (U_d(a) - U_d(b)))."""
    return 1.0 / (1.0 + math.exp(-DESIGNERS[designer]["sharpness"] * (utility_a - utility_b)))
