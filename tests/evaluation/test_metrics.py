"""Metrics on hand-made inputs with known answers."""

import math

import pytest

from rlhf_ads.evaluation.metrics import (click_log_loss, distinct_n, pairwise_accuracy, quantiles, self_bleu,
                                         top_opening_share, weighted_auc, win_rate)


def test_pairwise_accuracy_with_ties_and_groups():
    acc = pairwise_accuracy([2.0, 1.0, 0.5, 3.0], [1.0, 1.0, 0.7, 0.0], ["a", "a", "b", "b"])
    assert acc == {"all": 0.625, "a": 0.75, "b": 0.5}


def test_weighted_auc_matches_expanded_samples():
    # row scores 0.1, 0.5, 0.9 with (pos, neg) = (0, 2), (1, 1), (2, 0):
    # positives at 0.5 (x1) and 0.9 (x2); negatives at 0.1 (x2) and 0.5 (x1)
    # pairs: 0.5 vs 0.1: 1*2 wins, 0.5 vs 0.5: 1*1 tie; 0.9 beats all 3 negatives twice -> 6
    assert weighted_auc([0.1, 0.5, 0.9], [0, 1, 2], [2, 1, 0]) == pytest.approx((2 + 0.5 + 6) / 9)
    assert weighted_auc([0.3, 0.3], [1, 1], [1, 1]) == 0.5
    assert math.isnan(weighted_auc([0.1], [0], [5]))


def test_click_log_loss():
    assert click_log_loss([0.5], [1], [2]) == pytest.approx(math.log(2))
    assert click_log_loss([0.1, 0.2], [1, 2], [10, 10]) == pytest.approx(
        -(math.log(0.1) + 9 * math.log(0.9) + 2 * math.log(0.2) + 8 * math.log(0.8)) / 20)


def test_distinct_n():
    assert distinct_n(["a b a b"], 1) == 0.5
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a b", "a b"], 2) == 0.5
    assert distinct_n([""], 2) == 0.0


def test_top_opening_share_counts_the_commonest_opening_ignoring_case_and_punctuation():
    ads = ["Learn more: trail shoes", "learn MORE - tax software", "Shop now", "Book today!", "", "Learn"]
    assert top_opening_share(ads) == pytest.approx(2 / 5)  # the empty ad has no opening; "learn" alone is its own
    assert top_opening_share(ads, words=1) == pytest.approx(3 / 5)
    assert top_opening_share(["Learn more: a", "Learn more: b"]) == 1.0
    assert top_opening_share(["", "  "]) == 0.0


def test_self_bleu_is_100_for_copies_and_0_for_disjoint_texts():
    assert self_bleu(["fast trail shoes for you"] * 3) == pytest.approx(100.0)
    assert self_bleu(["alpha beta gamma delta", "one two three four", "red green blue white"]) == pytest.approx(0.0)
    assert math.isnan(self_bleu(["only one"]))


def test_win_rate_counts_ties_half_and_checks_lengths():
    assert win_rate([2.0, 1.0, 0.0, 5.0], [1.0, 1.0, 3.0, 4.0]) == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    with pytest.raises(ValueError, match="equal"):
        win_rate([1.0], [1.0, 2.0])


def test_quantiles_nearest_rank():
    assert quantiles(list(range(1, 11))) == [1, 5, 9]
    assert quantiles([7.0]) == [7.0, 7.0, 7.0]
