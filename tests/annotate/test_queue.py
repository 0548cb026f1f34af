"""The queue: each pair to `overlap` designers and never twice to one; the reward model's least sure pairs first;
the left/right order drawn at random and recorded."""

import random

from rlhf_ads.annotate.queue import LEASE_SECONDS, next_assignment, progress
from rlhf_ads.annotate.scoring import preference_probability, score_candidates, uncertainty


def label_all(store, designer, overlap, rng=None) -> list:
    """Label every pair the queue gives `designer` ('a' each time); the assignments it gave, in order."""
    shown = []
    while (assignment := next_assignment(store, designer, overlap, rng)) is not None:
        shown.append(assignment)
        store.submit(designer, assignment.id, "a", "", f"req-{designer.name}-{len(shown):04d}")
    return shown


def test_each_pair_goes_to_overlap_designers_and_never_twice_to_one(store, tokens):
    designers = [store.designer_for_token(t) for t in tokens.values()]
    seen = {d.name: label_all(store, d, overlap=2) for d in designers}
    per_pair = {}
    for label in store.labels():
        per_pair.setdefault(label.pair_id, []).append(label.designer)
    assert len(per_pair) == store.pair_count() == 5
    assert all(len(names) == 2 and len(set(names)) == 2 for names in per_pair.values())
    assert len(seen["ana"]) == len(seen["ben"]) == 5 and seen["cleo"] == []  # the first two filled every pair
    assert [a.pair_id for a in seen["ana"]] == [a.pair_id for a in seen["ben"]]  # one shared order: overlap builds up


def test_a_shown_pair_holds_its_place_until_labelled_or_its_lease_runs_out(store, tokens):
    ana, ben = (store.designer_for_token(tokens[n]) for n in ("ana", "ben"))
    first = next_assignment(store, ana, overlap=1)
    assert next_assignment(store, ana, overlap=1) == first  # a reload shows the same pair
    assert next_assignment(store, ben, overlap=1).pair_id != first.pair_id  # held for ana
    later = first.offered_at + LEASE_SECONDS + 1
    assert next_assignment(store, store.designer_for_token(tokens["cleo"]), 1, now=later).pair_id == first.pair_id


def test_the_order_of_the_two_ads_is_random_and_recorded_with_the_label(store, tokens):
    designers = [store.designer_for_token(t) for t in tokens.values()]
    rng = random.Random(3)
    shown = {(d.name, a.pair_id): (a.left.id, a.right.id) for d in designers for a in label_all(store, d, 3, rng)}
    labels = store.labels()
    assert {(label.designer, label.pair_id): (label.left_id, label.right_id) for label in labels} == shown
    firsts = [label.left_id < label.right_id for label in labels]
    assert any(firsts) and not all(firsts)  # both orders were shown
    assert all(label.winner_loser == (label.left_id, label.right_id) for label in labels)  # 'a' is the left ad


def test_pairs_the_reward_model_is_least_sure_about_come_first(store, tokens):
    fake = {"shoe-1": 0.0, "shoe-2": 3.0, "shoe-3": 0.1, "xss-1": 1.0, "xss-2": -1.0}

    def scorer(completions, prompts, **columns):
        assert len(prompts) == len(completions) and columns["product"][0] == "trail running shoe"
        texts = {c.text: c.id for c in store.candidates().values()}
        return [fake.get(texts[text]) for text in completions]  # None: the prompt pair goes unscored

    scores = score_candidates(store.candidates().values(), scorer)
    assert set(scores) == set(fake)
    store.set_scores(scores)
    ana = store.designer_for_token(tokens["ana"])
    order = [{a.left.id, a.right.id} for a in label_all(store, ana, overlap=1)]
    assert order[:4] == [{"shoe-1", "shoe-3"}, {"xss-1", "xss-2"}, {"shoe-2", "shoe-3"}, {"shoe-1", "shoe-2"}]
    assert len(order) == 5  # the unscored pair last
    store.set_scores(None)  # cleared: the random order again


def test_bradley_terry_probability_and_uncertainty():
    assert preference_probability(1.0, 1.0) == 0.5 and uncertainty(2.0, 2.0) == 0
    assert preference_probability(800.0, 0.0) == 1.0 and preference_probability(0.0, 800.0) == 0.0  # no overflow
    assert uncertainty(0.0, 1.0) == uncertainty(1.0, 0.0) > uncertainty(0.0, 0.1)


def test_progress_counts_labels_against_an_equal_share(store, tokens):
    ana = store.designer_for_token(tokens["ana"])
    assert progress(store, ana, overlap=2).as_dict() == {"labelled": 0, "goal": 4, "available": 5}  # ceil(5 * 2 / 3)
    label_all(store, ana, overlap=2)
    assert progress(store, ana, overlap=2, goal=10).as_dict() == {"labelled": 5, "goal": 10, "available": 0}
