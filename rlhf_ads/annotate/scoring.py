"""The current reward model's view of a pair: each candidate's score, P(A better than B) = sigmoid(score A -
score B) as the Bradley-Terry model it was trained with reads it, and the uncertainty |P - 0.5| the queue
offers the smallest of first."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from rlhf_ads.annotate.candidates import Candidate, prompt_row


def preference_probability(score_a: float, score_b: float) -> float:
    """P(A preferred to B) under Bradley-Terry."""
    difference = score_a - score_b
    return 1 / (1 + math.exp(-difference)) if difference >= 0 else math.exp(difference) / (1 + math.exp(difference))


def uncertainty(score_a: float, score_b: float) -> float:
    """0 when the model cannot tell A from B, 0.5 when it is sure."""
    return abs(preference_probability(score_a, score_b) - 0.5)


def load_scorer(folder: str) -> Callable:
    """The reward stage's output folder as a reward function (the `reward_model` reward PPO uses)."""
    from rlhf_ads.rewards import resolve_reward

    return resolve_reward("reward_model", {"path": str(folder)})


def score_candidates(candidates: Iterable[Candidate], scorer: Callable) -> dict[str, float]:
    """candidate id -> score, reading each ad with its brief as the reward stage trained the scorer to
    (`scorer(completions, prompts, **columns)`, the reward-function protocol)."""
    from rlhf_ads.data import reward_columns, row_context

    candidates = list(candidates)
    rows = [prompt_row(c.brief) for c in candidates]
    scores = scorer([c.text for c in candidates], [row_context(r) for r in rows], **reward_columns(rows))
    return {c.id: float(s) for c, s in zip(candidates, scores) if s is not None}
