"""Candidate files: a team's own JSONL (briefs or prompts + text) is read and checked line by line; `annotate
candidates` writes one from checkpoints that reads back the same."""

import json

import pytest

from rlhf_ads import cli
from rlhf_ads.annotate.candidates import candidate_row, read_candidates
from rlhf_ads.errors import DataError
from tests.annotate.conftest import CANDIDATES, write_jsonl


def test_a_teams_own_file_groups_ads_by_brief_and_reads_back_what_it_writes(candidates_file, tmp_path):
    found = read_candidates(candidates_file)
    assert [c.brief_key for c in found][:5] == ["shoe"] * 3 + ["xss"] * 2
    prompt_keys = {c.brief_key for c in found[5:]}
    assert len(prompt_keys) == 1 and next(iter(prompt_keys)).startswith("p-")  # same prompt, same brief
    assert found[0].brief == {"id": "shoe", "product": "trail running shoe", "brand": "Ridgeline",
                              "platform": "google_rsa", "field": "headline", "keywords": ["trail shoes"]}
    assert found[5].id.startswith("c-") and found[5].model == "own"  # ids from the content when not given
    again = write_jsonl(tmp_path / "again.jsonl", [candidate_row(c) for c in found])
    assert read_candidates(again) == found


@pytest.mark.parametrize("row, field, reason", [
    ({"brief_id": "b", "product": "shoe"}, "text", "missing"),
    ({"brief_id": "b", "product": "shoe", "text": "  "}, "text", "empty or whitespace"),
    ({"brief_id": "b", "product": "shoe", "text": 3}, "text", "expected text, got int"),
    ({"product": "shoe", "platform": "tiktok", "field": "headline", "text": "x"}, "platform", "unknown platform"),
    ({"product": "shoe", "platform": "google_rsa", "text": "x"}, "field", "missing: platform 'google_rsa' needs"),
    ({"text": "an ad for nothing"}, "prompt", "missing"),
    ({"brief_id": "b7", "text": "an ad"}, "product", "missing: give the brief's fields"),
    ({"id": "shoe-1", "brief_id": "b", "product": "shoe", "text": "again"}, "id", "duplicate id 'shoe-1' (first at"),
    ({"brief_id": "shoe", "product": "sandal", "text": "x"}, "brief_id", "brief 'shoe' differs from the one first"),
])
def test_each_bad_row_names_file_line_and_field(tmp_path, row, field, reason):
    path = write_jsonl(tmp_path / "mine.jsonl", [CANDIDATES[0], row])
    with pytest.raises(DataError) as caught:
        read_candidates(path)
    message = str(caught.value)
    assert f"{path}:2: field '{field}': {reason}" in message, message
    assert message.startswith(f"{path}: 1 of 2 candidates have problems")


def test_a_line_that_is_not_json_is_named_too(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(CANDIDATES[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"mine.jsonl:2: field '\(line\)': invalid JSON"):
        read_candidates(path)


def test_rows_with_only_a_brief_id_take_their_brief_from_a_briefs_source(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"brief_id": "b00000", "text": "one"}, {"brief_id": "b00000", "text": "two"}])
    found = read_candidates(path, briefs="bundled:briefs")
    assert found[0].brief_key == "b00000" and found[0].brief["product"] and found[0].brief == found[1].brief
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"brief_id": "nope", "text": "one"}])
    with pytest.raises(DataError, match="field 'brief_id': 'nope' is not in bundled:briefs"):
        read_candidates(missing, briefs="bundled:briefs")


def test_the_cli_writes_candidates_from_checkpoints_that_the_app_reads(tmp_path, tiny_model_dir, adapter_dir, capsys):
    out = tmp_path / "candidates.jsonl"
    assert cli.main(["annotate", "candidates", f"model.base={tiny_model_dir}", "model.dtype=fp32",
                     "--models", f"base,{adapter_dir}", "--briefs", "bundled:heldout", "--num-briefs", "2",
                     "--per-brief", "2", "--max-new-tokens", "6", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["model"] for r in rows} <= {"base", "adapter"} and len({r["brief_id"] for r in rows}) <= 2
    assert all(r["product"] and r["platform"] and r["text"] for r in rows)
    assert len(rows) >= 6  # 2 briefs x 2 ads x 2 checkpoints, less any empty ad
    assert read_candidates(out)[0].id == rows[0]["id"]
    assert "rlhf-ads annotate serve --db" in capsys.readouterr().out
    with pytest.raises(DataError, match="needs sampling"):
        from rlhf_ads import config
        from rlhf_ads.annotate.candidates import generate_candidates

        generate_candidates(config.load(None, [f"model.base={tiny_model_dir}"]), ["base"],
                            config.DataSource("bundled:heldout"), 2, 1, 0.0, 4)
