"""Metrics for scorers: pairwise accuracy, weighted AUC and log-loss for click logs."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from rlhf_ads.lint.keywords import ad_words


def win_shares(candidate: list[float], baseline: list[float]) -> list[float]:
    """Per pair: 1 where the candidate scores higher, 0.5 on a tie, 0 where lower."""
    if len(candidate) != len(baseline) or not candidate:
        raise ValueError(f"win_shares needs equal, non-empty lists; got {len(candidate)} and {len(baseline)}")
    return [1.0 if c > b else 0.5 if c == b else 0.0 for c, b in zip(candidate, baseline)]


def pairwise_accuracy(chosen: list[float], rejected: list[float], groups: list[str] | None = None) -> dict[str, float]:
    """Share of pairs where chosen scores above rejected (ties count half); per group when groups are given."""
    hits = win_shares(chosen, rejected)
    out = {"all": sum(hits) / len(hits)}
    if groups is not None:
        by_group = defaultdict(list)
        for group, hit in zip(groups, hits):
            by_group[group].append(hit)
        out.update({g: sum(v) / len(v) for g, v in sorted(by_group.items())})
    return out


def weighted_auc(scores: list[float], positives: list[float], negatives: list[float]) -> float:
    """ROC AUC where row i stands for positives[i] positive and negatives[i] negative samples, all scored
    scores[i] (e.g. clicks and non-clicks of one ad). Ties count half (Mann-Whitney)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    total_pos, total_neg = sum(positives), sum(negatives)
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    area, neg_below, i = 0.0, 0.0, 0
    while i < len(order):
        j = i
        while j < len(order) and scores[order[j]] == scores[order[i]]:
            j += 1
        tied = order[i:j]
        pos_here, neg_here = sum(positives[k] for k in tied), sum(negatives[k] for k in tied)
        area += pos_here * (neg_below + 0.5 * neg_here)
        neg_below += neg_here
        i = j
    return area / (total_pos * total_neg)


def click_log_loss(probabilities: list[float], clicks: list[float], impressions: list[float]) -> float:
    """Binary cross-entropy per impression: -sum(c log p + (n - c) log(1 - p)) / sum(n)."""
    eps = 1e-7
    total = 0.0
    for p, c, n in zip(probabilities, clicks, impressions):
        p = min(max(p, eps), 1 - eps)
        total -= c * math.log(p) + (n - c) * math.log(1 - p)
    return total / sum(impressions)


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique word n-grams over all n-grams across the texts."""
    grams = [tuple(words[i:i + n]) for words in (t.lower().split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def top_opening_share(texts: list[str], words: int = 2) -> float:
    """The share of non-empty texts that open with their most common first `words` words (case and
    punctuation ignored): about 1/len(texts) when openings vary, 1 when every ad is one template
    (`Learn more: <keyword>`); 0 for no text."""
    counts = Counter(opening for t in texts if (opening := tuple(ad_words(t)[:words])))
    return max(counts.values()) / sum(counts.values()) if counts else 0.0


def self_bleu(texts: list[str]) -> float:
    """Self-BLEU (Zhu et al. 2018, Texygen) in [0, 100]: mean sentence BLEU of each text against all the
    others as references (sacrebleu, exponential smoothing). Higher means less diverse; nan for < 2 texts."""
    import sacrebleu

    if len(texts) < 2:
        return float("nan")
    scores = [sacrebleu.sentence_bleu(text, texts[:i] + texts[i + 1:]).score for i, text in enumerate(texts)]
    return sum(scores) / len(scores)


def win_rate(candidate: list[float], baseline: list[float]) -> float:
    """Share of paired items where the candidate's score beats the baseline's (ties count half)."""
    return sum(win_shares(candidate, baseline)) / len(candidate)


def quantiles(values: list[float], points: tuple[float, ...] = (0.1, 0.5, 0.9)) -> list[float]:
    """Nearest-rank quantiles of the values, one per point in [0, 1]."""
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))] for p in points]
