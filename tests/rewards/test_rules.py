"""Each shipped rule and reward on positive and negative examples."""

import math

import pytest

from reward_models.copy_quality import (BrandVoice, RecentDiversity, batch_diversity, brief_facts, call_to_action,
                                        keyword_coverage, repetition)
from reward_models.platform import length_fit, length_limit
from reward_models.policy import ad_policy
from rlhf_ads.lint import context_for, lint, term_pattern
from rlhf_ads.rewards.composite import CompositeReward, RewardComponent

GOOGLE_HEADLINE = context_for("google_rsa", "headline")


def rules(text, ctx=GOOGLE_HEADLINE):
    return [v.rule for v in lint(text, ctx)]


def test_term_pattern_matches_whole_words_and_phrases_only():
    pattern = term_pattern(["free", "no-fee card", "c++"])
    assert [bool(pattern.search(t.lower())) for t in ("Free trial", "Get a no-fee card", "learn C++ fast")] == [True] * 3
    assert not any(pattern.search(t) for t in ("freedom", "carefree", "no-fee cards", "abc++"))


@pytest.mark.parametrize("text, rule", [
    ("FLOWERS for you", "excessive_capitals"),
    ("FlOwErS for you", "excessive_capitals"),
    ("F.L.O.W.E.R.S today", "excessive_capitals"),
    ("Fresh flowers!!", "repeated_punctuation"),
    ("Fresh flowers?!", "repeated_punctuation"),
    ("Fresh flowers!", "exclamation"),
    ("Fresh fl@wers", "symbols_as_letters"),
    ("Earn Ca$h fast", "symbols_as_letters"),
    ("*Fresh* flowers", "decorative_symbols"),
    ("Fresh flowers 🌸", "emoji"),
    ("The best flowers", "unsupported_superlative"),
    ("#1 florist in town", "unsupported_superlative"),
    ("Click here for roses", "click_here"),
    ("Last chance for roses", "pressure_phrase"),
    ("Don't miss out on roses", "pressure_phrase"),
    ("Florists' secrets revealed", "secrets_language"),
    ("Sale sale on roses", "repetition"),
    ("- roses\n- tulips", "list_formatting"),
    ("Roses delivered in 2 hours, every day of the week", "over_limit"),
])
def test_rule_fires_on_its_example(text, rule):
    assert rule in rules(text)


@pytest.mark.parametrize("text", [
    "Fresh roses, delivered today",
    "SPF 30 sunscreen from $18",  # allowed acronym, dollar price
    "CRM with SOC 2 and SSO",
    "YouTube-ready iPhone cases",  # brand casing is not alternating case
    "Save 20% on U.S.A. trips",
    "Plan sprints in 10 minutes",
])
def test_clean_ads_pass(text):
    assert rules(text) == []


def test_platform_settings_change_the_verdict():
    meta = context_for("meta", "primary_text")
    assert "emoji" not in rules("Fresh flowers 🌸", meta) and "exclamation" not in rules("Fresh flowers!", meta)
    assert "unsupported_superlative" not in rules("#1 florist in town", context_for("google_rsa", "headline",
                                                                                     supported_claims=["#1"]))
    assert rules("Cheap roses", context_for("google_rsa", "headline", prohibited_terms=["cheap"])) == ["prohibited_term"]


def test_cjk_counts_double_against_the_limit():
    assert "over_limit" in rules("新鮮な花を今日お届けします。当日配送可能")  # 19 wide chars = 38 > 30
    assert "over_limit" not in rules("新鮮な花を今日お届け")  # 10 wide chars = 20
    assert length_limit(["新鮮な花を今日お届けします。当日配送可能"], [""], platform="google_rsa", field="headline") == [-1.0]
    assert length_limit(["新鮮な花を今日お届けします。当日配送可能"], [""], platform="meta", field="headline") == [0.0]


def test_length_rewards_per_sample_columns_and_shared_kwargs():
    texts = ["x" * 20, "x" * 31, "x" * 80]
    assert length_limit(texts, [""] * 3, platform=["google_rsa"] * 3, field=["headline", "headline", "description"]) == [
        0.0, -1.0, 0.0]
    assert length_limit(["x"], [""], platform=[None], field=[None]) == [None]
    fit = length_fit(["x" * 30, "x" * 9, "x" * 36, "x" * 90], [""] * 4, platform="google_rsa", field="headline")
    assert fit[0] == 1.0 and math.isclose(fit[1], 9 / 30 / 0.6) and math.isclose(fit[2], 1 - 4 * 0.2)
    assert fit[3] == -1.0
    steep = length_fit(["x" * 9, "", "x" * 20], [""] * 3, platform="google_rsa", field="headline", empty=-1.0)
    assert math.isclose(steep[0], -1 + 2 * 9 / 30 / 0.6) and steep[1] == -1.0 and steep[2] == 1.0


def test_ad_policy_counts_violations_except_length():
    scores = ad_policy(["Fresh roses today", "BEST ROSES!!!", "x" * 50], [""] * 3, platform="google_rsa", field="headline")
    assert scores[0] == 0.0 and scores[1] <= -4.0 and scores[2] == 0.0


def test_keyword_coverage_and_call_to_action():
    kws = [["trail running shoes", "grippy outsole"], ["crm software"], []]
    assert keyword_coverage(["Trail running shoe with a grippy outsole", "Project tool", "Hi"], [""] * 3, keywords=kws) == [
        1.0, 0.0, None]
    assert keyword_coverage(["crm software"], [""], keywords=["CRM software", "sales"]) == [0.5]  # one shared list
    assert call_to_action(["Trail shoes. Shop now.", "Book today: spa days", "Trail shoes with lugs"], [""] * 3) == [
        1.0, 1.0, 0.0]


def test_brief_facts_rewards_stated_figures_and_penalizes_invented_ones():
    page = "Trail shoe at $129 with 4 mm lugs and a 280 g weight. Free 30-day returns."
    ads = ["Trail shoe", "4 mm lugs, 280 g. Shop now.", "Only $99 today", "Trail shoe, 4 mm lugs, 280 g, 30-day returns"]
    scores = brief_facts(ads, [""] * 4, landing_page=page)
    # 'trail', 'shoe': 2 page words; 4 and 280: 2 figures + 'lugs'; 99 invented; 3 figures + 4 words: capped
    assert scores == pytest.approx([0.2, 0.9, -0.5, 1.0])
    assert brief_facts(["x", "$5 off"], [""] * 2, landing_page=[None, ""]) == [None, None]
    assert brief_facts(["$1 $2 $3"], [""], landing_page=["Nothing stated"]) == [-1.0]  # floored


def test_brand_voice_repetition_and_diversity():
    voice = BrandVoice(preferred=["crafted", "care"], avoided=["cheap"])
    assert voice(["Crafted with care", "Cheap shoes", "Shoes"], [""] * 3) == [1.0, -1.0, 0.0]
    with pytest.raises(ValueError, match="needs a lexicon"):
        BrandVoice()
    rep = repetition(["fresh roses delivered today", "buy now buy now buy now buy now"], [""] * 2)
    assert rep[0] == 0.0 and rep[1] < -0.3
    div = batch_diversity(["fresh roses delivered today", "fresh roses delivered today", "plan sprints in minutes"], [""] * 3)
    assert div[0] == 0.0 and div[2] == 1.0
    assert batch_diversity(["alone"], [""]) == [None]


def test_recent_diversity_remembers_what_ppo_shows_it_and_nothing_else():
    recent = RecentDiversity(window=2)
    roses = "fresh roses delivered today"
    assert recent([roses], [""]) == [None]  # nothing to compare with yet
    mix = CompositeReward([RewardComponent("recent", recent)])
    mix.score([roses, "plan sprints in minutes"], ["", ""])  # scoring alone (validation, evaluation) remembers nothing
    assert recent.recent == [] and mix.observes_rollouts
    mix.observe([roses, "plan sprints in minutes"])
    assert recent([roses, "brand new tents"], [""] * 2) == [0.0, 1.0]  # the copy of a recent ad scores 0
    restored = CompositeReward([RewardComponent("recent", RecentDiversity(window=2))])
    restored.load_state_dict(mix.state_dict())  # PPO's checkpoint carries the window
    assert restored.components[0].fn.recent == [roses, "plan sprints in minutes"]
    mix.observe(["tents for two", "boots for hiking"])  # the window keeps the last two ads only
    assert recent([roses], [""]) == [1.0]
    with pytest.raises(ValueError, match="window >= 1"):
        RecentDiversity(window=0)


def test_recent_diversity_shared_counts_every_ngram_the_recent_ads_share():
    recent = RecentDiversity(window=4, score="shared", shared_at=0.5)
    assert recent(["learn more here"], [""]) == [None]
    recent.observe(["learn more today", "learn more now", "fresh roses delivered"])
    # 4 other ads each; a bigram in 2 of them (0.5 x 4) costs in full: `learn more` (2 recent ads) does, `more here`
    # (in none) does not, so the first ad keeps half; a bigram only the batch's other ad shares costs 1/2
    assert recent(["learn more here", "plan sprints fast"], [""] * 2) == [0.5, 1.0]
    assert recent(["plan sprints fast", "plan sprints fast"], [""] * 2) == [0.5, 0.5]
    # n-grams of the ad's own prompt's words are not counted: the first ad's prompt holds all its words; for the
    # second, `learn more` costs in full (3 other ads) and `more here` half (the first ad)
    skipping = RecentDiversity(window=4, score="shared", shared_at=0.5, skip_prompt_words=True)
    skipping.observe(["learn more today", "learn more now", "fresh roses delivered"])
    assert skipping(["learn more here", "learn more here"], ["Learn more here.", "Write an ad."]) == [1.0, 0.25]
    with pytest.raises(ValueError, match="'closest' or 'shared'"):
        RecentDiversity(score="nearest")
    with pytest.raises(ValueError, match="shared_at"):
        RecentDiversity(score="shared", shared_at=0)
    with pytest.raises(ValueError, match="skip_prompt_words needs score: shared"):
        RecentDiversity(skip_prompt_words=True)
