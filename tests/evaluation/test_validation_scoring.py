"""Validation scoring shared by PPO, GRPO and RLOO: the proxy, gold, diversity and the share of ads within limits."""

import pytest

from rlhf_ads.config import DataSource, RewardSpec
from rlhf_ads.data import representative_rows, row_target, within_limit_shares
from rlhf_ads.data.gold import mean_gold
from rlhf_ads.evaluation import validation
from rlhf_ads.modeling import load_tokenizer
from rlhf_ads.rewards import CompositeReward


def test_scores_name_within_limit_and_distinct_2_of_the_greedy_ads(tmp_path, tiny_model_dir, monkeypatch):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    prompts = validation.ValidationPrompts(DataSource("bundled:briefs:validation"), 2, tokenizer, tmp_path,
                                           max_new_tokens=4)
    limit = row_target(prompts.rows[1])[2]
    ads = ["Save on the plan today", "Save on " + "x" * limit]  # the second runs over its brief's limit
    monkeypatch.setattr(validation, "generate_completions", lambda *args, **kwargs: ads)
    mix = CompositeReward.from_specs([RewardSpec(function="length_fit", name="fit")])
    metrics = validation.ValidationPrompts.score(prompts, model=None, rewards=mix, prefix="run/eval")
    assert metrics["run/eval/within_limit"] == 0.5
    first, second = ("/".join(row_target(row)[:2]) for row in prompts.rows)
    assert metrics[f"run/eval/within_limit/{second}"] == (0.5 if first == second else 0.0)
    assert metrics[f"run/eval/within_limit/{first}"] == (0.5 if first == second else 1.0)
    assert metrics["run/eval/distinct_2"] == pytest.approx(5 / 6)  # "save on" twice among 4 + 2 bigrams
    assert metrics["run/eval/top_opening_share"] == 1.0  # both open "save on"
    assert metrics["run/eval/gold"] == pytest.approx(mean_gold(prompts.rows, ads))
    fit = mix.score(ads, prompts.prompts, **prompts.columns).raw["fit"]
    assert metrics["run/eval/fit"] == pytest.approx(sum(fit) / 2)


def test_validation_rows_keep_the_sources_mix_of_ad_targets():
    """Not the file's first rows: each (platform, field) gets its exact share, rounded down, and the seats left go
    to the largest remainders, ties to the target met first; file order is kept."""
    targets = [("google_rsa", "headline")] * 5 + [("meta", "headline")] * 3 + [("meta", "primary_text")] * 2
    rows = [{"id": i, "platform": platform, "field": field} for i, (platform, field) in enumerate(targets)]

    def ids(count):
        return [row["id"] for row in representative_rows(rows, count)]

    assert ids(5) == [0, 1, 2, 5, 8]  # shares 2.5, 1.5, 1.0: the tied remainder goes to google (met first)
    assert ids(4) == [0, 1, 5, 8]  # shares 2.0, 1.2, 0.8: the seat left goes to the largest remainder
    assert ids(1) == [0]
    assert ids(10) == ids(12) == list(range(10))


def test_within_limit_shares_count_per_ad_target_and_an_empty_ad_as_not_kept():
    """The same shares for validation's curve and evaluate's report; a row without a target is not counted."""
    rows = [{"platform": "google_rsa", "field": "headline"}] * 3 + [{"platform": "meta", "field": "primary_text"},
                                                                     {"prompt": "no target"}]
    headline_limit = row_target(rows[0])[2]
    ads = ["Fresh coffee, delivered", "x" * (headline_limit + 1), "", "Fresh coffee at your door every week", "any"]
    shares = within_limit_shares(ads, rows)
    assert shares == {"within_limit": 0.5, "within_limit/google_rsa/headline": pytest.approx(1 / 3),
                      "within_limit/meta/primary_text": 1.0}
    assert within_limit_shares(["any"], [{"prompt": "no target"}]) == {}
