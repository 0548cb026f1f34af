"""What generate, PPO and evaluate write for: plain prompts or briefs with only a product required, checked by the
one validator `rlhf-ads data check` runs too (issue #27, item 3)."""

import json

import pytest

from rlhf_ads import cli
from rlhf_ads.data import Brief, load_prompts, reward_columns, row_target
from rlhf_ads.data.briefs import brief_context, brief_request, scorer_text
from rlhf_ads.data.validation import guess_kind
from rlhf_ads.errors import DataError

PROMPT = {"id": "p1", "prompt": "Write a headline for a waterproof trail running shoe."}
NO_BRAND = {"id": "b1", "product": "trail running shoe", "platform": "google_rsa", "field": "headline",
            "keywords": ["trail shoes"]}
PRODUCT_ONLY = {"id": "b2", "product": "budgeting app", "audience": "students", "brand": ""}


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_plain_prompts_and_briefs_without_brand_or_platform_are_accepted(tmp_path):
    rows = load_prompts(write(tmp_path / "mine.jsonl", [PROMPT, NO_BRAND, PRODUCT_ONLY]))
    assert [r.get("brief") is not None for r in rows] == [False, True, True]
    assert [row_target(r) for r in rows] == [(None, None, None), ("google_rsa", "headline", 30), (None, None, None)]
    assert rows[1]["brief"].brand == "" and rows[2]["brief"].max_chars is None


def test_a_brief_needs_a_product_and_platform_and_field_go_together(tmp_path):
    path = write(tmp_path / "bad.jsonl", [PROMPT, {"id": "x1", "brand": "Acme", "tone": "warm"},
                                          {"id": "x2", "product": "shoe", "platform": "google_rsa"},
                                          {"id": "x3", "product": "shoe", "field": "headline"},
                                          {"id": "x4", "product": "shoe", "platform": "meta", "field": "path"}])
    with pytest.raises(DataError) as err:
        load_prompts(path)
    lines = str(err.value).splitlines()[1:]
    assert [line.strip() for line in lines] == [
        f"{path}:2: field 'product': missing",
        f"{path}:3: field 'field': missing: platform 'google_rsa' needs the field whose limit applies "
        "(headline, description, path)",
        f"{path}:4: field 'platform': missing: field 'headline' needs its platform (google_rsa, microsoft_rsa, meta)",
        f"{path}:5: field 'field': 'path' is not a meta field (known: primary_text, headline, description)"]


def test_data_check_and_the_stages_run_the_same_validator(tmp_path, monkeypatch, capsys):
    from rlhf_ads.data import validation

    seen = []
    original = validation.row_problems

    def recording(row, kind, where, max_text_chars):
        seen.append(kind)
        return original(row, kind, where, max_text_chars)

    monkeypatch.setattr(validation, "row_problems", recording)
    files = {"prompts": [PROMPT], "briefs without brand": [NO_BRAND, PRODUCT_ONLY],
             "a platform without field": [dict(NO_BRAND, field="")], "no product": [{"id": "b", "brand": "Acme"}],
             "mixed": [PROMPT, NO_BRAND], "unknown platform": [dict(NO_BRAND, platform="tiktok")]}
    for name, rows in files.items():
        path = write(tmp_path / f"{name.replace(' ', '_')}.jsonl", rows)
        seen.clear()
        checked = cli.main(["data", "check", path]) == 0
        checked_as, seen[:] = set(seen), []
        try:
            load_prompts(path)
            loaded = True
        except DataError:
            loaded = False
        assert checked == loaded, (name, capsys.readouterr().out)
        assert checked_as == set(seen) == {"prompts"}, name
    capsys.readouterr()


def test_the_prompt_states_only_the_fields_a_brief_gives():
    request = brief_request(Brief(product="budgeting app", audience="students"))
    assert request.splitlines() == ["Write one ad.", "Product: budgeting app", "Audience: students", "Keywords: none",
                                    "Reply with the ad text only."]
    request = brief_request(Brief(product="trail shoe", platform="google_rsa", field="headline"))
    assert request.startswith("Write one Google Ads responsive search ad headline.\n")
    assert "Limit: at most 30 characters." in request and "for " not in request.splitlines()[0]
    bare = Brief(product="budgeting app")
    assert brief_context(bare).startswith("ad (no limit) | brand: none | product: budgeting app")
    assert scorer_text("c", "Save more", bare) == "c\nAd (9 chars, 0 words in capitals): Save more"


def test_rewards_see_absent_fields_as_not_applicable(tmp_path):
    from reward_models.platform import length_fit, length_limit
    from reward_models.policy import ad_policy

    rows = load_prompts(write(tmp_path / "mine.jsonl", [PROMPT, NO_BRAND, PRODUCT_ONLY]))
    columns = reward_columns(rows)
    assert columns["platform"] == [None, "google_rsa", None] and columns["brand"] == [None, None, None]
    assert columns["keywords"] == [None, ["trail shoes"], None]
    ads = ["Trail shoes that grip", "Trail shoes that grip on every muddy climb", "Budget with friends"]
    assert length_limit(ads, ["p"] * 3, **columns) == [None, -1.0, None]
    assert length_fit(ads, ["p"] * 3, **columns)[0::2] == [None, None]
    assert ad_policy(ads, ["p"] * 3, **columns) == [0.0, 0.0, 0.0]


def test_data_check_guesses_a_click_log_as_clicks_and_a_brief_as_prompts():
    assert guess_kind({"prompt": "P", "ad": "A", "impressions": 10, "clicks": 1}) == "clicks"
    assert guess_kind({"id": "b1", "prompt": "P"}) == "prompts"
    assert guess_kind(dict(NO_BRAND)) == "prompts"
    assert guess_kind({"prompt": "P", "completion": "C"}) == "sft"
