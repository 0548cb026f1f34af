"""Bootstrap intervals, paired differences and win rates over briefs, on inputs whose answers are worked out
by hand (the resampling distribution of a mean of 0/1 or +-1 values is binomial)."""

import pytest

from rlhf_ads.evaluation.metrics import win_shares
from rlhf_ads.evaluation.stats import (bootstrap_mean, compare, describe_difference, format_cell, paired_difference,
                                       standard_deviation, table_rows)


def test_interval_of_a_constant_is_the_constant():
    estimate = bootstrap_mean([0.25] * 7)
    assert (estimate.mean, estimate.low, estimate.high, estimate.n) == (0.25, 0.25, 0.25, 7)
    assert estimate.excludes_zero


def test_interval_of_four_coin_flips_is_binomial():
    """Mean of 4 draws from {0, 0, 1, 1}: P(0) = P(1) = 1/16 > 2.5%, so the 95% interval is [0, 1]."""
    estimate = bootstrap_mean([0.0, 0.0, 1.0, 1.0], resamples=20000)
    assert (estimate.mean, estimate.low, estimate.high) == (0.5, 0.0, 1.0)


def test_paired_difference_quantiles_by_hand():
    """Differences (+1, +1, +1, +1, -1): a resample's mean is (5 - 2k) / 5 with k ~ Binomial(5, 0.2) draws of -1.
    P(k >= 3) = 5.8% and P(k >= 4) = 0.67%, so the 2.5% quantile is k = 3 (mean -0.2); P(k = 0) = 32.8%, so
    the 97.5% quantile is 1.0. The interval includes 0: not distinguishable from zero."""
    baseline = [0.5, 0.4, 0.3, 0.2, 0.6]
    candidate = [b + d for b, d in zip(baseline, [1, 1, 1, 1, -1])]
    difference = paired_difference(candidate, baseline, resamples=20000)
    assert difference.mean == pytest.approx(0.6)
    assert difference.low == pytest.approx(-0.2) and difference.high == pytest.approx(1.0)
    assert not difference.excludes_zero


def test_pairing_removes_the_spread_between_briefs():
    """Briefs differ a lot, the model gain is a constant 0.1: paired, the interval is exactly 0.1."""
    baseline = [0.1, 0.9, 0.3, 0.7, 0.5]
    difference = paired_difference([b + 0.1 for b in baseline], baseline)
    assert difference.low == pytest.approx(0.1) and difference.high == pytest.approx(0.1)
    assert difference.excludes_zero
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_difference([1.0], [1.0, 2.0])


def test_win_shares_count_ties_half():
    assert win_shares([0.9, 0.5, 0.1], [0.5, 0.5, 0.5]) == [1.0, 0.5, 0.0]


def test_standard_deviation_is_the_sample_sd():
    assert standard_deviation([1.0, 2.0, 3.0, 4.0]) == pytest.approx(1.2909944)
    assert standard_deviation([3.0]) == 0.0


def test_compare_reports_intervals_differences_gold_units_and_words():
    per_brief = {"sft": {"gold": [0.4, 0.6, 0.5, 0.5], "compliant": [1.0, 0.0, 1.0, 1.0]},
                 "ppo": {"gold": [0.5, 0.7, 0.6, 0.5], "compliant": [1.0, 1.0, 1.0, 1.0]}}
    metrics, sentences = compare(per_brief, "sft")
    assert metrics["sft/gold_sd"] == pytest.approx(standard_deviation([0.4, 0.6, 0.5, 0.5]))
    assert metrics["ppo/gold_vs_sft"] == pytest.approx(0.075)
    assert metrics["ppo/gold_vs_sft_sd"] == pytest.approx(0.075 / metrics["sft/gold_sd"])
    assert metrics["ppo/win_rate_vs_sft_gold"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert metrics["ppo/compliance_vs_sft"] == pytest.approx(0.25)
    assert metrics["sft/gold_low"] <= 0.5 <= metrics["sft/gold_high"]
    assert "ppo/gold_vs_sft" not in {k for k in metrics if k.startswith("sft/")}
    assert len(sentences) == 2 and sentences[0].startswith("ppo's gold is higher than sft's by 0.075")
    assert "too few briefs" in sentences[0]  # four briefs
    assert "SD of sft's per-ad gold" in sentences[0]


def test_words_say_whether_a_difference_is_distinguishable_from_zero():
    clear = paired_difference([1.0] * 5, [0.5] * 5)
    assert describe_difference("ppo", "sft", "gold", clear).endswith(": distinguishable from zero.")
    unclear = paired_difference([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    assert "not distinguishable from zero" in describe_difference("ppo", "sft", "gold", unclear)
    few = paired_difference([1.0, 1.0], [0.5, 0.5])  # a zero-width interval from two briefs proves nothing
    assert describe_difference("ppo", "sft", "gold", few).endswith("too few briefs to tell (at least 5 needed).")


def test_table_rows_put_intervals_beside_their_metric():
    metrics = {"eval/sft/gold": 0.5, "eval/sft/gold_low": 0.4, "eval/sft/gold_high": 0.6, "eval/ppo/gold": 0.7,
               "eval/ppo/distinct_2": 0.8}
    rows = table_rows(metrics, ["sft", "ppo"])
    assert list(rows) == ["distinct_2", "gold"]
    assert [format_cell(*cell) for cell in rows["gold"]] == ["0.500 [0.400, 0.600]", "0.700"]
    assert format_cell(*rows["distinct_2"][0]) == "-"


def test_a_judge_that_leaves_ads_unscored_gets_no_statistics():
    from rlhf_ads.evaluation.evaluate import _per_brief_scores

    records = [{"gold": 0.5, "judge": None, "compliant": True}, {"gold": 0.7, "judge": 1.0, "compliant": False}]
    assert _per_brief_scores({"sft": records}, 0) == {"": {"sft": {"gold": [0.5, 0.7], "compliant": [1.0, 0.0]}}}
