"""Every input format gives the same rows, with places named for later errors."""

import csv
import json

import datasets
import pytest

from rlhf_ads.data import load_briefs, load_rows
from rlhf_ads.data.formats import read_records
from rlhf_ads.errors import ConfigError, DataError

PREFS = [
    {"id": "1", "prompt": "Write a headline for Ridgeline shoes.", "chosen": "Trail shoes with 4 mm lugs", "rejected": "BEST SHOES!!!"},
    {"id": "2", "prompt": "Write a headline for Timeloom.", "chosen": "Plan sprints in minutes", "rejected": "Software."},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(params=["jsonl", "csv", "parquet", "disk", "memory"])
def prefs_source(request, tmp_path):
    fmt = request.param
    if fmt == "jsonl":
        return write_jsonl(tmp_path / "p.jsonl", PREFS)
    if fmt == "csv":
        return write_csv(tmp_path / "p.csv", PREFS)
    dataset = datasets.Dataset.from_list(PREFS)
    if fmt == "parquet":
        dataset.to_parquet(str(tmp_path / "p.parquet"))
        return tmp_path / "p.parquet"
    if fmt == "disk":
        datasets.DatasetDict({"train": dataset}).save_to_disk(str(tmp_path / "folder"))
        return tmp_path / "folder"
    return dataset


def test_every_format_yields_the_same_rows(prefs_source):
    rows = load_rows(prefs_source if not hasattr(prefs_source, "suffix") else str(prefs_source), "preferences")
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [
        (p["prompt"], p["chosen"], p["rejected"]) for p in PREFS]


def test_places_are_named_per_format(tmp_path):
    assert read_records(write_jsonl(tmp_path / "a.jsonl", PREFS))[1].where.endswith("a.jsonl:2")
    assert read_records(write_csv(tmp_path / "a.csv", PREFS))[1].where.endswith("a.csv:3")  # line 1 is the header
    assert read_records(datasets.Dataset.from_list(PREFS))[1].where == "dataset:row 1"


def test_trl_formats_prompt_completion_and_conversational(tmp_path):
    pc = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Brief: shoes", "completion": "Trail shoes, 4 mm lugs"}])
    assert load_rows(str(pc), "sft")[0]["completion"] == "Trail shoes, 4 mm lugs"
    conv = write_jsonl(tmp_path / "m.jsonl", [{"messages": [{"role": "user", "content": "Brief"},
                                                            {"role": "assistant", "content": "Ad"}]}])
    assert load_rows(str(conv), "sft")[0]["messages"][-1]["content"] == "Ad"
    conv_pref = write_jsonl(tmp_path / "cp.jsonl", [{"prompt": [{"role": "user", "content": "Brief"}],
                                                     "chosen": [{"role": "assistant", "content": "Good ad"}],
                                                     "rejected": [{"role": "assistant", "content": "Bad ad"}]}])
    assert load_rows(str(conv_pref), "preferences")[0]["chosen"][0]["content"] == "Good ad"


def test_column_mapping_renames_user_columns(tmp_path):
    path = write_jsonl(tmp_path / "own.jsonl", [{"brief_text": "B", "better_ad": "Good", "worse_ad": "Bad"}])
    rows = load_rows(str(path), "preferences", columns={"prompt": "brief_text", "chosen": "better_ad", "rejected": "worse_ad"})
    assert (rows[0]["prompt"], rows[0]["chosen"], rows[0]["rejected"]) == ("B", "Good", "Bad")
    with pytest.raises(ConfigError, match="'winner' is not a preferences column"):
        load_rows(str(path), "preferences", columns={"winner": "better_ad"})


def test_bundled_sources_split_and_brief_join():
    heldout = load_briefs("bundled:heldout")
    assert len(heldout) > 100 and heldout[0].platform in ("google_rsa", "microsoft_rsa", "meta")
    prefs = load_rows("bundled:preferences:validation", "preferences")
    assert prefs and all(r["split"] == "validation" for r in prefs)
    assert prefs[0]["brief"].id == prefs[0]["brief_id"]


def test_disk_folder_with_several_splits_needs_a_choice(tmp_path):
    dataset = datasets.Dataset.from_list(PREFS)
    datasets.DatasetDict({"a": dataset, "b": dataset}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match="has splits a, b"):
        load_rows(str(tmp_path / "dd"), "preferences")
    assert len(load_rows(str(tmp_path / "dd"), "preferences", split="b")) == 2


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unknown data format '.txt'"):
        load_rows(str(tmp_path / "x.txt"), "sft")
    with pytest.raises(DataError, match="not found"):
        load_rows(str(tmp_path / "nope.jsonl"), "sft")
