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
