"""Best-of-n: sample n completions per prompt and keep the one the reward mix scores highest.

The cheap baseline every RL method is measured against (Stiennon et al. 2020, "Learning to summarize from human
feedback", arXiv:2009.01325): no training, n times the sampling. Its KL to the sampling policy is at most
log(n) - (n - 1)/n (Stiennon et al., appendix; shown to be an upper bound by Beirami et al. 2024,
arXiv:2401.01879).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rlhf_ads.generation import generate_completions


@dataclass
class BestOfN:
    """The chosen completions with what they were chosen from."""

    ads: list[str]  # (B,) each prompt's best candidate
    scores: list[float]  # (B,) its reward-mix total
    candidates: list[list[str]]  # (B, n)
    candidate_scores: list[list[float]]  # (B, n)


def best_indices(totals: list[float], n: int) -> list[int]:
    """totals (B * n,), prompt b's candidates at b*n .. b*n + n - 1 -> (B,) the flat index of each prompt's
    highest total (the first of a tie)."""
    if n < 1 or len(totals) % n:
        raise ValueError(f"best_indices needs groups of n={n}; got {len(totals)} totals")
    return [start + max(range(n), key=lambda i: totals[start + i]) for start in range(0, len(totals), n)]


def best_of_n(model, tokenizer, prompts: list[str], columns: dict[str, list[Any]], rewards, n: int,
              **sampling) -> BestOfN:
    """Sample n completions for each prompt from `model` (`sampling`: generate_completions' options), score them
    with `rewards` (a CompositeReward; `columns` hold one value per prompt) and keep each prompt's best."""
    repeated = [prompt for prompt in prompts for _ in range(n)]
    candidates = generate_completions(model, tokenizer, repeated, **sampling)
    totals = rewards.score(candidates, repeated, **{k: [v for v in values for _ in range(n)]
                                                    for k, values in columns.items()}).total
    best = best_indices(totals, n)
    return BestOfN(ads=[candidates[i] for i in best], scores=[totals[i] for i in best],
                   candidates=[candidates[i:i + n] for i in range(0, len(candidates), n)],
                   candidate_scores=[totals[i:i + n] for i in range(0, len(totals), n)])


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n policy || sampling policy) <= log(n) - (n - 1)/n, in nats per completion."""
    return math.log(n) - (n - 1) / n
