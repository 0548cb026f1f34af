"""Trained models as reward functions: the pairwise reward model and the click-through model.

    rewards:
      - {function: reward_model, kwargs: {path: runs/quickstart/reward}, normalize: true}
      - {function: click_through, kwargs: {path: runs/quickstart/ctr}, weight: 0.5}

Each reads exactly what the reward stage trained it on: the brief as one compact line
(`brief_context`, built from a sample's brief columns when it has a product, else its prompt)
and the ad, with its width as a share of the brief's limit when the scorer was trained
on that (reward.limit_fit: `SCORER_INPUT` in its metadata). Loaded once; dropout off.
"""

from __future__ import annotations

import torch

from reward_models._columns import sample_briefs
from rlhf_ads.rewards import (SCORER_INPUT, brief_context, load_sequence_scorer, rater_mean_scores,
                              score_sequences)



class LearnedReward:
    """Scalar score of a trained reward model.

    path: the reward stage's output folder. standardize: subtract the mean and divide by the std of
    the scores of held-out SFT samples recorded at training time (so 0 is an average SFT ad).
    rater: for a model trained with reward.rater_column, score as this rater; default: the mean over
    the raters it was trained on.
    """

    def __init__(self, path: str, batch_size: int = 16, dtype: str = "auto", standardize: bool = False,
                 max_length: int = 512, rater: str | None = None):
        self.model, self.tokenizer, self.meta = load_sequence_scorer(path, dtype=dtype)
        self.batch_size, self.max_length, self.standardize = batch_size, max_length, standardize
        known = self.meta.get("raters")
        if rater is not None and rater not in (known or []):
            raise ValueError(f"rater {rater!r} is not one the model at {path} was trained on: "
                             f"{', '.join(known) if known else 'it was trained without reward.rater_column'}")
        self.raters = [rater] if rater is not None else (known or [None])
        self.reads_fit = self.meta.get("input") == SCORER_INPUT  # older scorers read the ad without its fit

    def logits(self, completions: list[str], prompts: list[str], columns: dict) -> list[float]:
        """Raw head outputs, one per completion (the mean over self.raters)."""
        def score(texts: list[str]) -> list[float]:
            return score_sequences(self.model, self.tokenizer, texts, batch_size=self.batch_size,
                                   max_length=self.max_length)
        briefs = sample_briefs(prompts, columns)
        contexts = [prompt if brief is None else brief_context(brief) for prompt, brief in zip(prompts, briefs)]
        return rater_mean_scores(score, contexts, completions, self.raters, briefs if self.reads_fit else None)

    def __call__(self, completions: list[str], prompts: list[str], **columns) -> list[float]:
        scores = self.logits(completions, prompts, columns)
        if self.standardize and "score_std" in self.meta:
            mean, std = self.meta["score_mean"], max(self.meta["score_std"], 1e-6)
            scores = [(s - mean) / std for s in scores]
        return scores


class ClickThroughReward(LearnedReward):
    """Predicted click-through rate in [0, 1] from a trained click-through model (sigmoid of its logit)."""

    def __init__(self, path: str, batch_size: int = 16, dtype: str = "auto", max_length: int = 512):
        super().__init__(path, batch_size=batch_size, dtype=dtype, max_length=max_length)

    def __call__(self, completions: list[str], prompts: list[str], **columns) -> list[float]:
        return torch.sigmoid(torch.tensor(self.logits(completions, prompts, columns))).tolist()
