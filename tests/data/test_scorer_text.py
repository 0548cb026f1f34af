"""What a scorer reads: the context, the ad's surface facts, and the ad."""

from rlhf_ads.data import Brief, scorer_text

HEADLINE = Brief(id="b1", product="trail shoe", brand="Ridgeline", platform="google_rsa", field="headline")


def test_the_ad_is_measured_against_its_brief_limit():
    text = scorer_text("ctx", "  Sizes 6 to 14, wide fit ", HEADLINE)  # 23 of google_rsa's 30 headline chars
    assert text == "ctx\nAd (23 chars, 77% of the limit; 0 words in capitals): Sizes 6 to 14, wide fit"
    over = scorer_text("ctx", "Trail shoes for every RUNNER, in every size", HEADLINE)
    assert over.startswith("ctx\nAd (43 chars, 143% of the limit, over it; 1 words in capitals): ")


def test_width_follows_the_platform_rule():
    wide = "跑鞋" * 8  # 16 characters, 32 wide where double-width characters count twice
    assert "(32 chars, 107% of the limit, over it;" in scorer_text("ctx", wide, HEADLINE)
    meta = Brief(id="b2", product="p", brand="b", platform="meta", field="headline")  # counts each character once
    assert f"(16 chars, {round(100 * 16 / meta.max_chars)}% of the limit;" in scorer_text("ctx", wide, meta)


def test_without_a_brief_only_the_length_is_given():
    assert scorer_text("user prompt", "Shop NOW") == "user prompt\nAd (8 chars, 0 words in capitals): Shop NOW"
