"""Simulated designers: the bundled data's designers, labelling pairs through the annotation queue."""

import math

import pytest

from rlhf_ads import cli
from rlhf_ads.annotate.candidates import read_candidates
from rlhf_ads.annotate.export import export
from rlhf_ads.annotate.simulate import simulate_labels
from rlhf_ads.annotate.store import Store
from rlhf_ads.data import load_rows
from rlhf_ads.data.designers import DESIGNERS, feature_utility, first_preferred
from rlhf_ads.data.gold import ad_features, gold_utility
from rlhf_ads.errors import RlhfAdsError
from tests.annotate.conftest import write_jsonl


@pytest.fixture(scope="module")
def bundled_pairs():
    """The first 30 bundled training pairs, each with its Brief."""
    return load_rows("bundled:preferences:train", "preferences")[:30]


def _candidates_file(tmp_path, pairs) -> str:
    rows = [{"id": f"{p['id']}-{side}", "brief_id": p["brief_id"], "text": p[side]} for p in pairs
            for side in ("chosen", "rejected")]
    return write_jsonl(tmp_path / "candidates.jsonl", rows)


def _store(tmp_path, pairs, name="db.sqlite") -> Store:
    store = Store(tmp_path / name)
    store.import_candidates(read_candidates(_candidates_file(tmp_path, pairs), briefs="bundled:briefs"))
    return store


def test_the_designers_are_those_that_drew_the_bundled_preferences(bundled_pairs):
    for pair in bundled_pairs:
        name, brief = pair["designer_id"], pair["brief"]
        chosen, rejected = pair["chosen"], pair["rejected"]
        p = first_preferred(name, feature_utility(name, ad_features(brief, chosen), chosen),
                            feature_utility(name, ad_features(brief, rejected), rejected))
        assert p == pytest.approx(pair["p_designer_chosen"], abs=6e-5)


def test_first_preferred_is_the_bradley_terry_probability():
    sharpness = DESIGNERS["d07_hurried"]["sharpness"]
    assert first_preferred("d07_hurried", 0.7, 0.6) == pytest.approx(1 / (1 + math.exp(-sharpness * 0.1)))
    assert first_preferred("d01_specifics", 0.5, 0.5) == 0.5


def test_every_pair_gets_overlap_labels_from_distinct_designers_that_mostly_pick_the_better_ad(tmp_path, bundled_pairs):
    store = _store(tmp_path, bundled_pairs[:16])
    given = simulate_labels(store, overlap=len(DESIGNERS), seed=0)
    labels = store.labels()
    pairs = store.pair_count()  # every two different ads of a brief
    assert pairs > 16
    assert sum(given.values()) == len(labels) == pairs * len(DESIGNERS)
    assert set(given) == set(DESIGNERS) and all(n == pairs for n in given.values())
    assert len({(label.pair_id, label.designer) for label in labels}) == len(labels)
    candidates = store.candidates()
    by_id = {p["id"]: p for p in bundled_pairs}
    higher_gold = 0
    for label in labels:
        winner, loser = (candidates[c] for c in label.winner_loser)
        assert winner.brief_key == loser.brief_key
        brief = by_id[winner.id.rsplit("-", 1)[0]]["brief"]
        higher_gold += gold_utility(brief, winner.text) > gold_utility(brief, loser.text)
    assert 0.7 < higher_gold / len(labels) < 0.98  # the data card: 86.8% of the bundled choices


def test_the_same_seed_gives_the_same_choices(tmp_path, bundled_pairs):
    def choices(name):
        store = _store(tmp_path, bundled_pairs[:10], name)
        simulate_labels(store, overlap=2, seed=3)
        return sorted((label.pair_id, label.designer, label.winner_loser) for label in store.labels())

    assert choices("one.sqlite") == choices("two.sqlite")


def test_a_plain_prompt_cannot_be_judged_and_nothing_is_labelled(store):
    with pytest.raises(RlhfAdsError, match="plain prompt"):
        simulate_labels(store)
    assert store.labels() == []


def test_the_cli_labels_and_export_mixes_the_bundled_pairs(tmp_path, bundled_pairs, capsys):
    db = str(tmp_path / "sim.sqlite")
    path = _candidates_file(tmp_path, bundled_pairs[:4])
    assert cli.main(["annotate", "simulate", "--db", db, "--candidates", path, "--briefs", "bundled:briefs"]) == 0
    pairs = Store(db).pair_count()
    assert f"{pairs} simulated labels" in capsys.readouterr().out
    done = export(Store(db), tmp_path / "prefs.jsonl", mix=("bundled:preferences:train",))
    rows = load_rows(str(tmp_path / "prefs.jsonl"), "preferences", briefs=done["briefs_out"])
    simulated = [r for r in rows if r.get("reason") == "simulated"]
    assert len(simulated) == pairs and {r["designer_id"] for r in simulated} <= set(DESIGNERS)
    assert len(rows) == pairs + len(load_rows("bundled:preferences:train", "preferences"))
