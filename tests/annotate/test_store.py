"""The annotation database: tokens kept as hashes only, candidates and pairs, labels stored once."""

import sqlite3

import pytest

from rlhf_ads.annotate.candidates import Candidate, read_candidates
from rlhf_ads.annotate.queue import next_assignment
from rlhf_ads.annotate.store import LabelConflict, Store, UnknownAssignment, hash_token
from rlhf_ads.errors import RlhfAdsError


def test_only_a_hash_of_each_token_is_stored_and_revoked_tokens_stop_working(store, tokens):
    raw = b"".join(p.read_bytes() for p in store.path.parent.glob("annotations.sqlite*"))
    for name, token in tokens.items():
        assert token.encode() not in raw and hash_token(token).encode() in raw
        assert store.designer_for_token(token).name == name
    assert store.designer_for_token("rla_" + "x" * 43) is None and store.designer_for_token(None) is None
    store.revoke_designer("ben")
    assert store.designer_for_token(tokens["ben"]) is None
    with pytest.raises(RlhfAdsError, match="exists; --rotate"):
        store.add_designer("ana")
    new = store.add_designer("ben", rotate=True)
    assert store.designer_for_token(new).name == "ben" and store.designer_for_token(tokens["ben"]) is None


def test_the_database_is_in_wal_mode(store):
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_candidates_of_a_brief_are_paired_once_and_reimports_add_nothing(store, candidates_file):
    assert store.pair_count() == 5
    assert store.import_candidates(read_candidates(candidates_file)) == (0, 0, 0)
    brief = {"id": "shoe", "product": "trail running shoe"}
    same = [Candidate("n1", "new", brief | {"id": "new"}, "own", "Same ad"),
            Candidate("n2", "new", brief | {"id": "new"}, "own", "same AD")]
    assert store.import_candidates(same) == (2, 0, 1)  # the same ad twice is no comparison


def test_a_stored_candidate_or_brief_that_changed_is_refused(store):
    old = store.candidates()["shoe-1"]
    with pytest.raises(RlhfAdsError, match="candidate 'shoe-1' differs"):
        store.import_candidates([Candidate(old.id, old.brief_key, old.brief, old.model, "another text")])
    with pytest.raises(RlhfAdsError, match="brief 'shoe' differs"):
        store.import_candidates([Candidate("shoe-9", "shoe", dict(old.brief, tone="loud"), "own", "x")])


def test_a_label_is_stored_once_and_a_different_second_label_is_a_conflict(store, tokens):
    ana = store.designer_for_token(tokens["ana"])
    shown = next_assignment(store, ana, overlap=1)
    label, again = store.submit(ana, shown.id, "a", "crisper", "req-00000001")
    assert not again and (label.left_id, label.right_id) == (shown.left.id, shown.right.id)
    assert label.winner_loser == (shown.left.id, shown.right.id) and label.designer == "ana"
    assert store.submit(ana, shown.id, "a", "crisper", "req-00000001") == (label, True)  # the same request
    assert store.submit(ana, shown.id, "a", "crisper", "req-00000002") == (label, True)  # the same label, new request
    with pytest.raises(LabelConflict):
        store.submit(ana, shown.id, "b", "", "req-00000003")
    with pytest.raises(LabelConflict, match="already stored a different label"):
        store.submit(ana, shown.id, "b", "", "req-00000001")  # a reused request id with another choice
    ben = store.designer_for_token(tokens["ben"])
    with pytest.raises(UnknownAssignment):
        store.submit(ben, shown.id, "a", "", "req-00000004")  # shown to ana, not ben
    assert len(store.labels()) == 1 and store.integrity() == "ok"


def test_a_store_on_a_fresh_path_makes_its_folder(tmp_path):
    assert Store(tmp_path / "new" / "db.sqlite").pair_count() == 0
