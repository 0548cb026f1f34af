"""The tone-of-voice reward: its lexicon learned from approved ads, and its scores."""

import math

import pytest

from reward_models.tone import ToneVoice, learn_tone_lexicon
from rlhf_ads.rewards.resolve import resolve_reward

# 6 warm ads (5 say "welcome", all name their brand, Homely), 6 technical ads (5 say "api"), and 6 minimalist ads
# whose one word, "plan", every tone uses
EXAMPLES = ([("warm", f"Welcome, Homely plan {i}.", "Homely sofa") for i in range(5)]
            + [("warm", "Homely sofa plan 9.", "Homely sofa")]
            + [("technical", f"Cloudy api plan {i}.", "Cloudy db") for i in range(5)]
            + [("technical", "Fast db, plan 7.", "Cloudy db")]
            + [("minimalist", f"Plan {i}.", "Bare") for i in range(6)])


def test_lexicon_keeps_each_tones_distinctive_words_and_never_the_briefs_names():
    lexicon = learn_tone_lexicon(EXAMPLES, min_count=5, min_log_odds=1.0)
    # "welcome": in 5 of 6 warm ads and none of the 12 others: log(6/8) - log(1/14) = 2.35, as "api" for technical;
    # "homely", in all 6 warm ads and no other, would score 2.50, but it is the warm briefs' brand
    assert lexicon == {"warm": ["welcome"], "technical": ["api"]}
    assert "minimalist" not in lexicon  # its words are everyone's: no marker, so the reward leaves it out


def test_lexicon_thresholds_are_applied_as_documented():
    odds = math.log(6 / 8) - math.log(1 / 14)
    assert learn_tone_lexicon(EXAMPLES, min_count=5, min_log_odds=odds + 1e-9) == {}
    assert learn_tone_lexicon(EXAMPLES, min_count=6, min_log_odds=1.0) == {}
    assert learn_tone_lexicon(EXAMPLES, min_count=5, min_log_odds=1.0, top=0) == {}


def test_score_own_marker_other_tones_marker_none_and_not_applicable():
    voice = ToneVoice(lexicon={"warm": ["welcome", "made with care"], "technical": ["api"]}, clash=0.5)
    ads = ["Welcome to Homely.", "Homely, made with care.", "Homely api, welcome", "Homely api.", "Homely sofa.",
           "Fundamental apis", "Any ad", "Any ad"]
    tones = ["warm", "warm", "warm", "warm", "warm", "technical", "minimalist", None]
    assert voice(ads, [""] * len(ads), tone=tones) == [1.0, 1.0, 1.0, -0.5, 0.0, 0.0, None, None]


def test_needs_exactly_one_lexicon_source():
    with pytest.raises(ValueError, match="exactly one of `lexicon`"):
        ToneVoice()
    with pytest.raises(ValueError, match="exactly one of `lexicon`"):
        ToneVoice(lexicon={"warm": ["welcome"]}, learn_from="bundled:sft:train")
    with pytest.raises(ValueError, match="top only apply with `learn_from`"):
        ToneVoice(lexicon={"warm": ["welcome"]}, top=3)
    with pytest.raises(ValueError, match="no tone has a marker"):
        ToneVoice(lexicon={"warm": []})


def test_learned_from_the_bundled_copy_by_its_registry_name():
    voice = resolve_reward("tone_voice", {"learn_from": "bundled:sft:train"})
    assert len(voice.lexicon) >= 6 and all(1 <= len(markers) <= 5 for markers in voice.lexicon.values())
    assert "minimalist" not in voice.lexicon  # shown by brevity in the bundled copy, not by words
    assert voice(["Trusted and proven."], [""], tone="authoritative") == [1.0]
