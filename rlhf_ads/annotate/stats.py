"""How much designers agree: per-designer counts, pairwise agreement, Krippendorff's alpha (nominal), and each
designer's agreement with the current reward model.

A label's outcome is read in the pair's fixed order (its two candidate ids sorted), whatever order the designer
saw: 'first' or 'second' better, 'tie' or 'unusable'. Alpha (Krippendorff 2011, "Computing Krippendorff's
Alpha-Reliability", nominal metric) takes the pairs labelled by two designers or more as its units.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from itertools import permutations

from rlhf_ads.annotate.store import Label


def outcome(label: Label) -> str:
    """'first' / 'second' (the pair's candidate ids sorted) better, 'tie' or 'unusable'."""
    if label.winner_loser is None:
        return label.choice
    winner, loser = label.winner_loser
    return "first" if winner < loser else "second"


def by_pair(labels: list[Label]) -> dict[str, list[Label]]:
    grouped: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        grouped[label.pair_id].append(label)
    return grouped


def krippendorff_alpha(units: list[list[str]]) -> float | None:
    """Nominal alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k over the coincidences o_ck (each
    unit of m values adds 1 / (m - 1) for every ordered pair of its values from different coders); units of one
    value are left out. None when there is nothing to measure (no unit of two, or a single value used)."""
    coincidences: Counter = Counter()
    for values in units:
        if len(values) < 2:
            continue
        for c, k in permutations(values, 2):
            coincidences[c, k] += 1 / (len(values) - 1)
    totals: Counter = Counter()
    for (c, _), weight in coincidences.items():
        totals[c] += weight
    n = sum(totals.values())
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if n <= 1 or expected == 0:
        return None
    observed = sum(weight for (c, k), weight in coincidences.items() if c != k)
    return 1 - (n - 1) * observed / expected


def pairwise_agreement(units: list[list[str]]) -> tuple[int, int]:
    """(agreeing, all) pairs of labels of the same unit by different designers."""
    agreeing = total = 0
    for values in units:
        for i, a in enumerate(values):
            for b in values[i + 1:]:
                total += 1
                agreeing += a == b
    return agreeing, total


def report(labels: list[Label], scores: dict[str, float] | None = None) -> dict:
    """Agreement statistics over stored labels; `scores` (candidate id -> reward-model score) adds each
    designer's agreement with the reward model on their A/B labels (equal scores count half)."""
    pairs = by_pair(labels)
    units = [[outcome(label) for label in group] for group in pairs.values()]
    agreeing, compared = pairwise_agreement(units)
    designers: dict[str, dict] = {}
    for name in sorted({label.designer for label in labels}):
        mine = [label for label in labels if label.designer == name]
        counts = Counter(label.choice for label in mine)
        others = [(outcome(label), outcome(other)) for label in mine for other in pairs[label.pair_id]
                  if other.designer != name]
        row = {"labels": len(mine), **{choice: counts[choice] for choice in ("a", "b", "tie", "unusable")},
               "a_share": counts["a"] / (counts["a"] + counts["b"]) if counts["a"] + counts["b"] else None,
               "median_seconds": statistics.median(label.created_at - label.offered_at for label in mine),
               "agreement_with_others": sum(a == b for a, b in others) / len(others) if others else None,
               "compared_with_others": len(others)}
        row.update(_model_agreement(mine, scores))
        designers[name] = row
    out = {"labels": len(labels), "designers": len(designers), "pairs_labelled": len(pairs),
           "pairs_with_overlap": sum(len(group) > 1 for group in pairs.values()),
           "pairwise_agreement": agreeing / compared if compared else None, "label_pairs_compared": compared,
           "krippendorff_alpha": krippendorff_alpha(units), "per_designer": designers}
    out.update(_model_agreement(labels, scores))
    return out


def _model_agreement(labels: list[Label], scores: dict[str, float] | None) -> dict:
    if scores is None:
        return {}
    judged = [label.winner_loser for label in labels
              if label.winner_loser is not None and all(c in scores for c in label.winner_loser)]
    agree = sum(1.0 if scores[w] > scores[r] else 0.5 if scores[w] == scores[r] else 0.0 for w, r in judged)
    return {"reward_model_agreement": agree / len(judged) if judged else None, "reward_model_compared": len(judged)}


def format_report(stats: dict) -> str:
    """The report as text: the totals, then one line per designer."""
    def share(value) -> str:
        return "-" if value is None else f"{value:.1%}"

    alpha = stats["krippendorff_alpha"]
    lines = [f"{stats['labels']} labels by {stats['designers']} designers on {stats['pairs_labelled']} pairs "
             f"({stats['pairs_with_overlap']} labelled by two or more)",
             f"pairwise agreement: {share(stats['pairwise_agreement'])} of {stats['label_pairs_compared']} label pairs; "
             f"Krippendorff's alpha (nominal): {'-' if alpha is None else f'{alpha:.3f}'}"]
    with_model = "reward_model_agreement" in stats
    if with_model:
        lines.append(f"reward model agrees with {share(stats['reward_model_agreement'])} of "
                     f"{stats['reward_model_compared']} A/B labels")
    header = f"{'designer':<20}{'labels':>7}{'A':>6}{'B':>6}{'tie':>6}{'unus.':>6}{'A share':>9}{'median s':>10}"
    header += f"{'agree w/ others':>17}" + (f"{'agree w/ model':>16}" if with_model else "")
    lines.append(header)
    for name, row in stats["per_designer"].items():
        line = (f"{name[:19]:<20}{row['labels']:>7}{row['a']:>6}{row['b']:>6}{row['tie']:>6}{row['unusable']:>6}"
                f"{share(row['a_share']):>9}{row['median_seconds']:>10.1f}{share(row['agreement_with_others']):>17}")
        lines.append(line + (f"{share(row['reward_model_agreement']):>16}" if with_model else ""))
    return "\n".join(lines)
