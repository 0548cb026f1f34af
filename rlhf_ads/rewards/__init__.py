"""Rewards: the plug-in protocol, resolution by name or path, and weighted composition.

`reward_models/` (the shipped ad-domain rewards) imports only from here. Names are imported on first use
(PEP 562), so reading the registry (`rlhf_ads.rewards.registry`, e.g. for `--help`) stays light.
"""

import importlib

_SOURCES = {
    "rlhf_ads.data.briefs": ["SCORER_INPUT", "Brief", "brief_context", "brief_from_row", "rater_mean_scores",
                             "render_prompt", "scorer_text"],
    "rlhf_ads.lint": ["PolicyContext", "Violation", "ad_words", "context_for", "fold_plural", "keywords_present",
                      "lint", "term_pattern"],
    "rlhf_ads.modeling": ["encode_for_scoring", "load_base", "load_sequence_scorer", "score_sequences"],
    "rlhf_ads.ppo.rollout": ["completion_logprobs"],
    "rlhf_ads.platforms": ["FieldSpec", "PlatformSpec", "field_spec", "platform_spec", "platforms", "text_width",
                           "width_for"],
    "rlhf_ads.rewards.composite": ["CompositeReward", "RewardComponent", "RewardResult", "RunningMoments"],
    "rlhf_ads.rewards.protocol": ["RewardError", "RewardFunction", "checked_call"],
    "rlhf_ads.rewards.resolve": ["REGISTRY", "register_reward", "resolve_reward"],
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'rlhf_ads.rewards' has no attribute '{name}'")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value
