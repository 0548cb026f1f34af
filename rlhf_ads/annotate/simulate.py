"""Simulated designers label the store's pairs: the bundled data's eight designers (rlhf_ads.data.designers) take
pairs through the same queue people do (`next_assignment`, `Store.submit`), each choosing by its Bradley-Terry
draw. It runs the feedback loop's second round (candidates from a trained policy -> labels -> export -> reward)
on the bundled data without people, as Ziegler et al. (2019) and InstructGPT (2022) collected labels on the
policy's own samples. Only briefs the bundled designers can judge qualify: briefs with a platform limit."""

from __future__ import annotations

import random

from rlhf_ads.annotate.candidates import Candidate, prompt_row
from rlhf_ads.annotate.queue import next_assignment
from rlhf_ads.annotate.store import Designer, Store
from rlhf_ads.data.designers import DESIGNERS, feature_utility, first_preferred
from rlhf_ads.data.gold import ad_features
from rlhf_ads.errors import RlhfAdsError


def _gold_features(candidate: Candidate) -> dict[str, float]:
    """The candidate's gold features, which every designer's utility weighs; a brief without a platform limit, or
    a plain prompt, is an error naming the candidate."""
    brief = prompt_row(candidate.brief).get("brief")
    if brief is None or brief.max_chars is None:
        raise RlhfAdsError(f"candidate {candidate.id!r}: simulated designers judge ads written for briefs with a "
                           "platform limit (product, platform, field); this one has a plain prompt or no limit")
    return ad_features(brief, candidate.text)


def _simulated_designers(store: Store) -> list[tuple[str, Designer]]:
    """Each bundled designer as a store designer of the same name (a new token each run; none is printed)."""
    found = []
    for name in sorted(DESIGNERS):
        token = store.add_designer(name, rotate=name in store.designers())
        found.append((name, store.designer_for_token(token)))
    return found


def simulate_labels(store: Store, overlap: int = 1, seed: int = 0) -> dict[str, int]:
    """Label every pair `overlap` times (as designers left) -> {designer: labels given this run}. Each label goes to
    a designer drawn at random among those the queue still has pairs for; the choice is 'a' (left) with
    probability sigmoid(sharpness * (U_d(left) - U_d(right)))."""
    if overlap < 1 or overlap > len(DESIGNERS):
        raise RlhfAdsError(f"overlap must be 1-{len(DESIGNERS)} (one label per simulated designer at most)")
    # every ad's features once, before the first label is stored (so an ad that cannot be judged stores nothing)
    features = {c.id: _gold_features(c) for c in store.candidates().values()}
    rng = random.Random(seed)
    active = _simulated_designers(store)
    given = {name: 0 for name, _ in active}
    while active:
        name, designer = active[rng.randrange(len(active))]
        assignment = next_assignment(store, designer, overlap, rng)
        if assignment is None:
            active.remove((name, designer))
            continue
        left, right = assignment.left, assignment.right
        p_left = first_preferred(name, feature_utility(name, features[left.id], left.text),
                                 feature_utility(name, features[right.id], right.text))
        choice = "a" if rng.random() < p_left else "b"
        store.submit(designer, assignment.id, choice, "simulated", f"simulated/{assignment.id}")
        given[name] += 1
    return given
