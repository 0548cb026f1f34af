import pytest

from rlhf_ads.errors import ConfigError
from rlhf_ads.platforms import field_spec, platforms, text_width, width_for


def test_specs_are_loaded_from_data_with_sources():
    assert field_spec("google_rsa", "headline").max_chars == 30
    assert field_spec("google_rsa", "description").max_chars == 90
    assert field_spec("google_rsa", "path").max_chars == 15
    assert field_spec("meta", "primary_text").max_chars == 125
    assert field_spec("meta", "headline").max_chars == 40
    assert field_spec("microsoft_rsa", "headline").max_chars == 30
    assert all(f.source for p in platforms().values() for f in p.fields.values())


def test_cjk_counts_double_where_the_platform_says_so():
    assert text_width("Shoes") == 5
    assert text_width("靴のセール") == 10
    assert text_width("ｱ") == 1  # half-width katakana is narrow
    assert width_for("靴", "google_rsa") == 2
    assert width_for("靴", "meta") == 1


def test_unknown_platform_or_field_names_choices():
    with pytest.raises(ConfigError, match="known: google_rsa"):
        field_spec("tiktok", "headline")
    with pytest.raises(ConfigError, match="no field 'title'"):
        field_spec("google_rsa", "title")


def test_no_citation_is_left_uncertain():
    """A citation is either confirmed from its page or dropped: no rule, limit or their documentation carries
    the old '(?)' marker of an unconfirmed source (issue #27, item 10)."""
    from pathlib import Path

    import reward_models.platform
    from rlhf_ads.lint import rules

    cited = [f.source for p in platforms().values() for f in p.fields.values()] + [r.source for r in rules.RULES]
    assert not [source for source in cited if "(?)" in source]
    texts = {"platforms.yaml": (Path(rules.__file__).parent.parent / "platforms.yaml").read_text(encoding="utf-8"),
             "lint/rules.py": Path(rules.__file__).read_text(encoding="utf-8"),
             "reward_models/platform.py": Path(reward_models.platform.__file__).read_text(encoding="utf-8")}
    assert not [name for name, text in texts.items() if "(?)" in text]
