"""Agreement statistics: Krippendorff's alpha against values worked out by hand, pairwise agreement, and the
per-designer report with the reward model's agreement."""

import pytest

from rlhf_ads.annotate.stats import format_report, krippendorff_alpha, pairwise_agreement, report
from rlhf_ads.annotate.store import Label


def test_alpha_on_a_small_example_worked_by_hand():
    # Coincidences: u1 (a, a) adds o_aa = 2; u2 (a, b) adds o_ab = o_ba = 1; u3 (b, b, b) adds 6 pairs of 1/2:
    # o_bb = 3. n_a = 3, n_b = 4, n = 7. alpha = 1 - (n - 1) * (o_ab + o_ba) / (2 n_a n_b) = 1 - 6 * 2 / 24 = 0.5.
    assert krippendorff_alpha([["a", "a"], ["a", "b"], ["b", "b", "b"]]) == pytest.approx(0.5)


def test_alpha_with_three_values_and_a_lone_label_worked_by_hand():
    # u1 (x, y), u2 (x, x), u3 (y, z), u4 (z) left out: o_xy = o_yx = 1, o_xx = 2, o_yz = o_zy = 1.
    # n_x = 3, n_y = 2, n_z = 1, n = 6; sum_{c != k} o = 4; sum_{c != k} n_c n_k = 2 (6 + 3 + 2) = 22.
    # alpha = 1 - 5 * 4 / 22 = 1/11.
    assert krippendorff_alpha([["x", "y"], ["x", "x"], ["y", "z"], ["z"]]) == pytest.approx(1 / 11)


def test_alpha_is_one_for_perfect_agreement_and_undefined_without_variation():
    assert krippendorff_alpha([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert krippendorff_alpha([["a", "a"], ["a", "a"]]) is None
    assert krippendorff_alpha([["a"], ["b"]]) is None


def test_pairwise_agreement_counts_label_pairs():
    assert pairwise_agreement([["a", "a", "b"], ["a", "b"], ["c"]]) == (1, 4)


def label(pair, designer, left, right, choice, seconds=10.0):
    return Label(0, pair, designer, left, right, choice, "", f"r-{pair}-{designer}", 100.0, 100.0 + seconds)


def test_report_reads_outcomes_in_the_pairs_fixed_order_whatever_was_shown():
    labels = [label("p1", "ana", "x1", "x2", "a"), label("p1", "ben", "x2", "x1", "b"),  # both: x1 better
              label("p2", "ana", "y1", "y2", "a"), label("p2", "ben", "y1", "y2", "b", 30.0),  # they disagree
              label("p3", "ana", "z1", "z2", "tie")]
    stats = report(labels, scores={"x1": 1.0, "x2": 0.0, "y1": 0.0, "y2": 0.0})
    assert stats["pairwise_agreement"] == 0.5 and stats["pairs_with_overlap"] == 2
    # units (first, first), (first, second): o_ff = 2, o_fs = o_sf = 1, n_f = 3, n_s = 1: 1 - 3 * 2 / 6 = 0
    assert stats["krippendorff_alpha"] == pytest.approx(0.0)
    ana, ben = stats["per_designer"]["ana"], stats["per_designer"]["ben"]
    assert (ana["labels"], ana["a"], ana["tie"], ana["a_share"]) == (3, 2, 1, 1.0)
    assert ben["a_share"] == 0.0 and ben["median_seconds"] == 20.0
    assert ana["agreement_with_others"] == ben["agreement_with_others"] == 0.5
    assert ana["reward_model_agreement"] == 0.75  # right on x, a half on y's equal scores
    assert ben["reward_model_agreement"] == 0.75 and stats["reward_model_compared"] == 4
    text = format_report(stats)
    assert "Krippendorff's alpha (nominal): 0.000" in text and "reward model agrees with 75.0% of 4" in text
    assert "agree w/ model" not in format_report(report(labels))
