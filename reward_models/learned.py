"""Trained models as reward functions: the pairwise reward model and the click-through model.

    rewards:
      - {function: reward_model, kwargs: {path: runs/quickstart/reward}, normalize: true}
      - {function: click_through, kwargs: {path: runs/quickstart/ctr}, weight: 0.5}

Each reads prompt + completion (+ EOS), exactly as the reward stage trained it, and is loaded once.
"""

from __future__ import annotations

import torch

from rlhf_ads.rewards import load_sequence_scorer


class LearnedReward:
    """Scalar score of a trained reward model on prompt + completion.

    path: the reward stage's output folder. standardize: subtract the held-out mean and divide by the
    std recorded at training time (so 0 is an average SFT sample).
    """

    def __init__(self, path: str, batch_size: int = 16, dtype: str = "bf16", standardize: bool = False,
                 max_length: int = 512):
        self.model, self.tokenizer, self.meta = load_sequence_scorer(path, dtype=dtype)
        self.batch_size, self.max_length, self.standardize = batch_size, max_length, standardize
        self.device = next(self.model.parameters()).device

    def texts(self, completions: list[str], prompts: list[str]) -> list[str]:
        eos = self.tokenizer.eos_token or ""
        return [p + c + (eos if not c.endswith(eos) else "") for p, c in zip(prompts, completions)]

    @torch.inference_mode()
    def logits(self, completions: list[str], prompts: list[str]) -> list[float]:
        """Raw head outputs (B,) for each prompt + completion."""
        texts, out = self.texts(completions, prompts), []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                   truncation=True, max_length=self.max_length, add_special_tokens=False).to(self.device)
            out.extend(self.model(**batch).logits[:, 0].float().tolist())
        return out

    def __call__(self, completions: list[str], prompts: list[str], **columns) -> list[float]:
        scores = self.logits(completions, prompts)
        if self.standardize and "score_std" in self.meta:
            mean, std = self.meta["score_mean"], max(self.meta["score_std"], 1e-6)
            scores = [(s - mean) / std for s in scores]
        return scores


class ClickThroughReward(LearnedReward):
    """Predicted click-through rate in [0, 1] from a trained click-through model (sigmoid of its logit)."""

    def __call__(self, completions: list[str], prompts: list[str], **columns) -> list[float]:
        return torch.sigmoid(torch.tensor(self.logits(completions, prompts))).tolist()
