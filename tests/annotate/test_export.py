"""Export: the preference rows the reward stage reads (`rlhf-ads data check --kind preferences` passes them), the
briefs they point at, margins from agreement, ties and both-unusable labels kept apart, other sources mixed in."""

import json

import pytest

from rlhf_ads import cli
from rlhf_ads.annotate.export import export
from rlhf_ads.annotate.queue import next_assignment
from rlhf_ads.data import load_rows
from rlhf_ads.errors import DataError

# What each designer says of the pair of the two ads (by candidate id); 'first' is the smaller id.
VERDICTS = {
    ("shoe-1", "shoe-2"): {"ana": "first", "ben": "first", "cleo": "second"},
    ("shoe-1", "shoe-3"): {"ana": "first", "ben": "tie", "cleo": "first"},
    ("shoe-2", "shoe-3"): {"ana": "unusable", "ben": "second", "cleo": "unusable"},
    ("xss-1", "xss-2"): {"ana": "second", "ben": "second", "cleo": "second"},
}


def label_as(store, tokens, verdicts=VERDICTS) -> None:
    """Every designer labels every pair: their verdict for the pairs in `verdicts`, the first ad otherwise."""
    for name, token in tokens.items():
        designer = store.designer_for_token(token)
        while (shown := next_assignment(store, designer, overlap=len(tokens))) is not None:
            first, second = sorted((shown.left.id, shown.right.id))
            verdict = verdicts.get((first, second), {}).get(name, "first")
            better = {"first": first, "second": second}.get(verdict)
            choice = verdict if better is None else "a" if shown.left.id == better else "b"
            store.submit(designer, shown.id, choice, f"{name} says {verdict}", f"r-{name}-{shown.pair_id}")


@pytest.fixture
def labelled(store, tokens):
    label_as(store, tokens)
    return store


def test_export_writes_what_the_reward_stage_reads(labelled, tmp_path, capsys):
    out = tmp_path / "prefs.jsonl"
    done = export(labelled, out, ties_out=tmp_path / "ties.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert done == {"rows": len(rows), "labels": 15, "mixed": 0, "ties": 1, "unusable": 2,
                    "briefs_out": str(tmp_path / "prefs.briefs.jsonl")}
    assert len(rows) == 12  # 15 labels less one tie and two both-unusable
    assert cli.main(["data", "check", str(out), "--kind", "preferences"]) == 0
    assert cli.main(["data", "check", done["briefs_out"], "--kind", "briefs"]) == 0
    capsys.readouterr()
    shoes = [r for r in rows if {r["chosen_id"], r["rejected_id"]} == {"shoe-1", "shoe-2"}]
    assert sorted((r["designer_id"], r["chosen_id"], round(r["margin"], 6)) for r in shoes) == [
        ("ana", "shoe-1", 0.333333), ("ben", "shoe-1", 0.333333), ("cleo", "shoe-2", -0.333333)]  # (agree - opposite) / n
    tied = [r for r in rows if {r["chosen_id"], r["rejected_id"]} == {"shoe-1", "shoe-3"}]
    assert {round(r["margin"], 6) for r in tied} == {0.666667} and {r["ties"] for r in tied} == {1}  # a tie is no agreement
    lone = [r for r in rows if {r["chosen_id"], r["rejected_id"]} == {"shoe-2", "shoe-3"}]
    assert [(r["margin"], r["unusable"]) for r in lone] == [(0.0, 2)]  # one A/B label: margin 0
    row = shoes[0]
    assert row["brief_id"] == "shoe" and "prompt" not in row and row["chosen"] == "Grippy Trail Shoes for Wet Rock"
    assert row["reason"] == "ana says first" and row["labelled_at"].endswith("+00:00")
    assert row["chosen_model"] == "sft" and row["shown_as_a"] in ("shoe-1", "shoe-2")
    prompts = [r for r in rows if "prompt" in r]
    assert len(prompts) == 3 and "brief_id" not in prompts[0]
    others = [json.loads(line) for line in (tmp_path / "ties.jsonl").read_text().splitlines()]
    assert sorted(o["label"] for o in others) == ["tie", "unusable", "unusable"] and all(o["ad_a"] for o in others)
    loaded = load_rows(str(out), "preferences", briefs=done["briefs_out"])  # as reward.train and .briefs read it
    assert loaded[0]["brief"].platform == "google_rsa" and loaded[0]["brief"].max_chars == 30


def test_other_sources_mix_in_with_their_briefs(labelled, tmp_path):
    out = tmp_path / "mixed.jsonl"
    done = export(labelled, out, mix=("bundled:preferences:heldout",))
    heldout = load_rows("bundled:preferences:heldout", "preferences")
    assert done["mixed"] == len(heldout) and done["rows"] == 12 + len(heldout)
    loaded = load_rows(str(out), "preferences", briefs=done["briefs_out"])
    assert all(row.get("brief") is not None or row.get("prompt") for row in loaded)
    assert all("margin" in row and "split" not in row for row in loaded)
    with pytest.raises(DataError, match="share the id"):
        export(labelled, out, mix=("bundled:preferences:heldout", "bundled:preferences:heldout"))


def test_nothing_to_export_is_an_error(store, tmp_path):
    with pytest.raises(DataError, match="no A/B labels to export yet"):
        export(store, tmp_path / "prefs.jsonl")


def test_labels_on_bundled_briefs_mix_with_the_bundled_pairs_that_share_them(tmp_path):
    from rlhf_ads.annotate.candidates import read_candidates
    from rlhf_ads.annotate.store import Store
    from tests.annotate.conftest import write_jsonl

    store = Store(tmp_path / "db.sqlite")
    path = write_jsonl(tmp_path / "c.jsonl", [{"brief_id": "b00000", "text": "one"}, {"brief_id": "b00000", "text": "two"}])
    store.import_candidates(read_candidates(path, briefs="bundled:briefs"))
    label_as(store, {"ana": store.add_designer("ana")})
    done = export(store, tmp_path / "prefs.jsonl", mix=("bundled:preferences:train",))  # one brief b00000 in both
    briefs = [json.loads(line) for line in open(done["briefs_out"])]
    assert sum(b["id"] == "b00000" for b in briefs) == 1
