"""Statistics over briefs: means with percentile-bootstrap confidence intervals, paired differences between
two models on the same briefs, and the words a report uses for them.

The unit is the brief: every model writes ads for the same briefs, so a model's score on a brief (the mean
over its ads for that brief) is one observation, and a difference between two models is taken brief by
brief (paired) before it is resampled. Resampling is seeded, so a report is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rlhf_ads.evaluation.metrics import win_shares

LEVEL = 0.95
RESAMPLES = 4000
MIN_BRIEFS = 5  # fewer, and a bootstrap interval says little (one brief gives a zero-width interval)


@dataclass(frozen=True)
class Estimate:
    """A mean over briefs with its percentile-bootstrap confidence interval at `level`."""

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def bootstrap_mean(values: list[float], *, resamples: int = RESAMPLES, level: float = LEVEL,
                   seed: int = 0) -> Estimate:
    """Mean of `values` (one per brief) with the percentile bootstrap interval: the (1 - level) / 2 and
    (1 + level) / 2 quantiles (nearest rank) of the means of `resamples` resamples drawn with replacement."""
    if not values:
        raise ValueError("bootstrap_mean needs at least one value")
    n = len(values)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    low = means[max(0, int(tail * resamples))]
    high = means[min(resamples - 1, int((1 - tail) * resamples))]
    return Estimate(sum(values) / n, low, high, n, level)


def paired_difference(candidate: list[float], baseline: list[float], **options) -> Estimate:
    """candidate - baseline brief by brief (equal-length lists in the same brief order), bootstrapped."""
    if len(candidate) != len(baseline) or not candidate:
        raise ValueError(f"paired_difference needs equal, non-empty lists; got {len(candidate)} and {len(baseline)}")
    return bootstrap_mean([c - b for c, b in zip(candidate, baseline)], **options)


def standard_deviation(values: list[float]) -> float:
    """Sample standard deviation (n - 1); 0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5


def describe_difference(name: str, baseline: str, metric: str, difference: Estimate,
                        unit_sd: float | None = None) -> str:
    """One sentence a reader can act on, e.g. 'ppo's gold is higher than sft's by 0.047 (95% CI 0.031 to 0.065,
    0.27 SD of sft's per-ad gold) on 120 briefs: distinguishable from zero.'"""
    if difference.mean:
        relation = f"is {'higher' if difference.mean > 0 else 'lower'} than {baseline}'s by {abs(difference.mean):.3f}"
    else:
        relation = f"equals {baseline}'s"
    spread = f", {difference.mean / unit_sd:+.2f} SD of {baseline}'s per-ad {metric}" if unit_sd else ""
    if difference.n < MIN_BRIEFS:
        verdict = f"too few briefs to tell (at least {MIN_BRIEFS} needed)"
    else:
        verdict = ("distinguishable from zero" if difference.excludes_zero
                   else "not distinguishable from zero (the interval includes 0)")
    return (f"{name}'s {metric} {relation} ({difference.level:.0%} CI {difference.low:+.3f} to {difference.high:+.3f}"
            f"{spread}) on {difference.n} briefs: {verdict}.")


# per-ad record field -> the metric name it reports under (eval/<model>/<metric>)
STAT_FIELDS = {"gold": "gold", "composite_reward": "composite_reward", "compliant": "compliance", "judge": "judge"}


def compare(per_brief: dict[str, dict[str, list[float]]], baseline: str, *, prefix: str = "", seed: int = 0,
            gold_sd: float | None = None) -> tuple[dict[str, float], list[str]]:
    """Intervals and paired differences for per-brief scores.

    per_brief: model -> record field (STAT_FIELDS) -> one value per brief, in the same brief order for every
    model. Returns flat metrics without the eval/<model>/ prefix' model part, keyed '<model>/<prefix><metric>_low'
    and '_high' (the mean's interval), '<model>/<prefix><metric>_vs_<baseline>' with '_low'/'_high' (the paired
    difference), '<model>/<prefix>win_rate_vs_<baseline>_gold' with its interval (ties half), `gold_sd` (the
    baseline's per-ad gold SD; default: the SD of its per-brief values) and each gold difference in that unit;
    and one sentence per difference."""
    metrics: dict[str, float] = {}
    sentences: list[str] = []
    base_scores = per_brief.get(baseline, {})
    if gold_sd is None and "gold" in base_scores:
        gold_sd = standard_deviation(base_scores["gold"])
    if gold_sd is not None:
        metrics[f"{baseline}/{prefix}gold_sd"] = gold_sd
    for name, fields in per_brief.items():
        for field, values in fields.items():
            metric = prefix + STAT_FIELDS[field]
            estimate = bootstrap_mean(values, seed=seed)
            metrics.update({f"{name}/{metric}_low": estimate.low, f"{name}/{metric}_high": estimate.high})
            if name == baseline or field not in base_scores:
                continue
            difference = paired_difference(values, base_scores[field], seed=seed)
            key = f"{name}/{metric}_vs_{baseline}"
            metrics.update({key: difference.mean, f"{key}_low": difference.low, f"{key}_high": difference.high})
            unit = gold_sd if field == "gold" and gold_sd else None
            if unit:
                metrics[f"{key}_sd"] = difference.mean / unit
            words = STAT_FIELDS[field].replace("_", " ")
            sentences.append(describe_difference(name, baseline, words, difference, unit))
            if field == "gold":
                wins = bootstrap_mean(win_shares(values, base_scores["gold"]), seed=seed)
                key = f"{name}/{prefix}win_rate_vs_{baseline}_gold"
                metrics.update({key: wins.mean, f"{key}_low": wins.low, f"{key}_high": wins.high})
    return metrics, sentences


Cell = tuple[float | None, float | None, float | None]  # (mean, low, high) of one model's metric


def table_rows(metrics: dict[str, float], names: list[str]) -> dict[str, list[Cell]]:
    """eval/<model>/<metric> metrics -> metric -> per model (mean, low, high); the interval bounds (<metric>_low,
    <metric>_high) join their metric's row instead of having rows of their own."""
    keys = {k.split("/", 2)[2] for k in metrics if k.startswith("eval/") and k.count("/") >= 2}
    bounds = {k for k in keys if k.endswith(("_low", "_high")) and k.rsplit("_", 1)[0] in keys}
    def cell(name: str, key: str) -> Cell:
        return tuple(metrics.get(f"eval/{name}/{key}{suffix}") for suffix in ("", "_low", "_high"))

    return {key: [cell(n, key) for n in names] for key in sorted(keys - bounds)}


def format_cell(mean: float | None, low: float | None, high: float | None) -> str:
    """'0.550 [0.510, 0.590]', '0.550' without an interval, '-' when missing."""
    if mean is None or mean != mean:
        return "-"
    return f"{mean:.3f}" if low is None or high is None else f"{mean:.3f} [{low:.3f}, {high:.3f}]"
