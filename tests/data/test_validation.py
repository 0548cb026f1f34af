"""Every validation reason, named with file, line and field; error vs skip."""

import json

import pytest

from rlhf_ads.data import load_rows
from rlhf_ads.errors import DataError

GOOD_CLICK = {"id": "c1", "prompt": "Brief", "ad": "Trail shoes", "impressions": 100, "clicks": 3}


def one_problem(tmp_path, kind, row=None, raw=None):
    """Load a two-row file (one good, one bad) and return the error text."""
    good = {"clicks": GOOD_CLICK, "preferences": {"prompt": "P", "chosen": "A", "rejected": "B"},
            "sft": {"prompt": "P", "completion": "C"}}[kind]
    path = tmp_path / "data.jsonl"
    bad_line = raw if raw is not None else json.dumps(row).encode()
    path.write_bytes(json.dumps(good).encode() + b"\n" + bad_line + b"\n")
    with pytest.raises(DataError) as err:
        load_rows(str(path), kind)
    assert f"{path}:2:" in str(err.value), str(err.value)
    assert f"{path}:1:" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("kind, row, field, reason", [
    ("preferences", {"prompt": "P", "chosen": "A"}, "rejected", "missing"),
    ("preferences", {"prompt": "P", "chosen": "   ", "rejected": "B"}, "chosen", "empty"),
    ("preferences", {"prompt": "P", "chosen": "Same ad", "rejected": "Same ad "}, "rejected", "identical to chosen"),
    ("clicks", dict(GOOD_CLICK, id="c2", clicks=200), "clicks", "clicks (200) > impressions (100)"),
    ("clicks", dict(GOOD_CLICK, id="c2", impressions=-5, clicks=0), "impressions", "negative count"),
    ("clicks", dict(GOOD_CLICK, id="c2", clicks=2.5), "clicks", "not a whole number"),
    ("sft", {"prompt": "P", "completion": "x" * 3000}, "completion", "over-long text (3000 > 2000"),
    ("clicks", dict(GOOD_CLICK), "id", "duplicate id 'c1'"),
    ("sft", {"prompt": "P", "completion": 42}, "completion", "expected text, got int"),
    ("sft", {"messages": [{"role": "user", "content": "hi"}]}, "messages", "must be the assistant's"),
])
def test_each_reason_names_line_field_and_reason(tmp_path, kind, row, field, reason):
    message = one_problem(tmp_path, kind, row)
    assert f"field '{field}'" in message and reason in message


def test_nan_is_reported(tmp_path):
    message = one_problem(tmp_path, "clicks", raw=b'{"id": "c2", "prompt": "P", "ad": "A", "impressions": NaN, "clicks": 1}')
    assert "field 'impressions': NaN" in message


def test_non_utf8_and_bad_json_lines(tmp_path):
    assert "not UTF-8" in one_problem(tmp_path, "sft", raw=b'{"prompt": "P", "completion": "caf\xe9"}')
    assert "invalid JSON" in one_problem(tmp_path, "sft", raw=b'{"prompt": "P", "completion": ')


def test_csv_nan_and_bad_bytes_name_their_lines(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_bytes(b"prompt,ad,impressions,clicks\nP,Ad one,100,3\nP,Ad two,nan,1\nP,Ad \xff three,10,1\n")
    with pytest.raises(DataError) as err:
        load_rows(str(path), "clicks")
    assert f"{path}:3: field 'impressions'" in str(err.value) and f"{path}:4: field '(line)': not UTF-8" in str(err.value)


def test_brief_rows_check_platform_and_field(tmp_path):
    path = tmp_path / "briefs.jsonl"
    base = {"id": "b1", "product": "shoe", "brand": "Ridgeline", "platform": "google_rsa", "field": "headline"}
    path.write_text(json.dumps(base) + "\n" + json.dumps(dict(base, id="b2", platform="tiktok")) + "\n"
                    + json.dumps(dict(base, id="b3", field="title")) + "\n")
    with pytest.raises(DataError) as err:
        load_rows(str(path), "briefs")
    assert "briefs.jsonl:2: field 'platform': unknown platform 'tiktok'" in str(err.value)
    assert "briefs.jsonl:3: field 'field': 'title' is not a google_rsa field" in str(err.value)


def test_skip_drops_bad_rows_prints_and_saves_the_reasons(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    rows = [{"prompt": "P", "chosen": "A", "rejected": "B"}, {"prompt": "P", "chosen": "A", "rejected": "A"},
            {"prompt": "", "chosen": "A", "rejected": "B"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = load_rows(str(path), "preferences", on_error="skip", report_dir=tmp_path / "run")
    assert len(kept) == 1
    printed = capsys.readouterr().out
    assert "skipped 2 of 3 rows" in printed and "identical to chosen" in printed
    saved = [json.loads(line) for line in (tmp_path / "run/data_problems.jsonl").read_text().splitlines()]
    assert {(p["where"].rsplit(":", 1)[1], p["field"]) for p in saved} == {("2", "rejected"), ("3", "prompt")}


def test_all_rows_bad_is_an_error_even_when_skipping(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "P", "chosen": "A", "rejected": "A"}) + "\n")
    with pytest.raises(DataError, match="no usable rows"):
        load_rows(str(path), "preferences", on_error="skip")


def test_a_data_sources_max_text_chars_is_the_limit_applied(tmp_path):
    from rlhf_ads import config
    from rlhf_ads.data import data_options

    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"prompt": "P", "completion": "x" * 50}) + "\n")
    source = config.load(None, [f"sft.train.path={path}", "sft.train.max_text_chars=40"]).sft.train
    with pytest.raises(DataError, match=r"over-long text \(50 > 40"):
        load_rows(source.path, "sft", **data_options(source))
    source.max_text_chars = 60
    assert len(load_rows(source.path, "sft", **data_options(source))) == 1
