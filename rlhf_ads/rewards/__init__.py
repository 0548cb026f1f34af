"""Rewards: the plug-in protocol, resolution by name or path, and weighted composition.

`reward_models/` (the shipped ad-domain rewards) imports only from here.
"""

from rlhf_ads.data.briefs import SCORER_INPUT, Brief, brief_context, brief_from_row, rater_mean_scores, scorer_text
from rlhf_ads.modeling import encode_for_scoring, load_sequence_scorer, score_sequences
from rlhf_ads.platforms import FieldSpec, PlatformSpec, field_spec, platform_spec, platforms, text_width, width_for
from rlhf_ads.rewards.composite import CompositeReward, RewardComponent, RewardResult, RunningMoments
from rlhf_ads.rewards.protocol import RewardError, RewardFunction, checked_call
from rlhf_ads.rewards.resolve import REGISTRY, register_reward, resolve_reward

__all__ = [
    "SCORER_INPUT", "Brief", "brief_context", "brief_from_row", "encode_for_scoring", "rater_mean_scores", "score_sequences", "scorer_text", "CompositeReward", "FieldSpec", "PlatformSpec", "REGISTRY", "RewardComponent", "RewardError", "RewardFunction",
    "RewardResult", "RunningMoments", "checked_call", "field_spec", "load_sequence_scorer", "platform_spec", "platforms", "register_reward", "resolve_reward",
    "text_width", "width_for",
]
