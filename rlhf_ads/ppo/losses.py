"""PPO estimators and losses as pure functions on (B, T) tensors with a validity mask.

Follows "The N Implementation Details of RLHF with PPO" (Huang et al. 2024, arXiv 2403.17031)
and TRL 1.12's PPO (`trl.experimental.ppo`), whose numerics the golden tests pin.
"""

from __future__ import annotations

import torch

INVALID_LOGPROB = 1.0  # sentinel written at padded positions; they are masked out of every statistic


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is true. values, mask: (B, T)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum()
    return (values * mask).sum(dim) / mask.sum(dim)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance where `mask` is true, with Bessel's correction when `unbiased` (as TRL)."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        if count < 2:
            raise ValueError("whitening needs at least 2 valid positions; raise the batch or minibatch size")
        variance = variance * count / (count - 1)
    return variance


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(values - mean) / std over valid positions; `shift_mean=False` adds the mean back (reward whitening)."""
    mean, variance = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(variance + 1e-8)
    return whitened if shift_mean else whitened + mean


def token_rewards(kl: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor, kl_coef: float,
                  whiten: bool = False) -> torch.Tensor:
    """Per-token rewards (B, T): -kl_coef * kl at every token, plus each sample's score at its last response
    token (Ziegler et al. 2019). kl, mask: (B, T); scores: (B,). With `whiten`, the rewards are scaled to unit
    variance over the valid tokens, their mean kept (TRL's whiten_rewards)."""
    rewards = -kl_coef * kl
    last = mask.long().sum(1) - 1
    rewards[torch.arange(len(last)), last] += scores
    if whiten:
        rewards = masked_whiten(rewards, mask, shift_mean=False) * mask
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016). rewards, values, mask: (B, T).

        delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lam * A_{t+1}      (A after the last token = 0)
        R_t     = A_t + V(s_t)                          (the value function's target)

    Positions past the response (mask false) have value 0 and reward 0, so the last valid step
    bootstraps from 0. Returns (advantages, returns), both (B, T).
    """
    values = values * mask
    rewards = rewards * mask
    length = rewards.shape[1]
    last = torch.zeros_like(rewards[:, 0])
    advantages = torch.zeros_like(rewards)
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    return advantages, advantages + values


def policy_loss(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate (Schulman et al. 2017): mean over valid tokens of max(-A r, -A clip(r)).

    All inputs (B, T). Returns (loss, stats) with clip fraction and approx-KL (0.5 E[(log r)^2]).
    """
    log_ratio = new_logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask),
             "approxkl": 0.5 * masked_mean(log_ratio ** 2, mask), "ratio": masked_mean(ratio, mask)}
    return loss, stats


def value_loss(new_values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip_range: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss: 0.5 * mean over valid tokens of max((v - R)^2, (clip(v) - R)^2). Inputs (B, T)."""
    clipped_values = old_values + torch.clamp(new_values - old_values, -clip_range, clip_range)
    unclipped_loss = (new_values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_loss, clipped_loss), mask)
    return loss, {"clipfrac": masked_mean((clipped_loss > unclipped_loss).float(), mask)}

