"""The KL penalty to the reference: per-token estimators and the fixed / adaptive coefficient controllers.

Everything about the KL lives here: `ESTIMATORS` is the table the recipe's `ppo.kl.estimator` is checked
against (adding an estimator is one entry), and `make_controller` builds the controller from `ppo.kl`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def k1(log_ratio: torch.Tensor) -> torch.Tensor:
    """k1 = log(p/q): unbiased, can be negative per token."""
    return log_ratio


def k3(log_ratio: torch.Tensor) -> torch.Tensor:
    """k3 = (q/p - 1) - log(q/p): unbiased, never negative, lower variance."""
    return torch.expm1(-log_ratio) + log_ratio


# name -> estimator of KL(policy || reference) per sampled token, from log(p/q) (Schulman 2020, "Approximating KL")
ESTIMATORS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"k1": k1, "k3": k3}


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token KL(policy || reference) estimate from the sampled tokens' log-probs.
    logprobs, ref_logprobs: (B, T) -> (B, T)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown KL estimator '{estimator}'; use {' or '.join(ESTIMATORS)}")
    return ESTIMATORS[estimator](logprobs - ref_logprobs)


class FixedKLController:
    """A constant KL coefficient `.value`."""

    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        """Fixed: nothing to update."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. 2019: beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon,
    where n_steps is the number of samples since the last update."""

    def __init__(self, value: float, target: float, horizon: int):
        super().__init__(value)
        self.target, self.horizon = target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        if not math.isfinite(current_kl):
            return
        proportional_error = max(-0.2, min(0.2, current_kl / self.target - 1.0))
        self.value *= 1.0 + proportional_error * n_steps / self.horizon


def make_controller(kl) -> FixedKLController:
    """The controller a recipe's `ppo.kl` section asks for: adaptive with a target, else fixed at `coef`."""
    if kl.target is None:
        return FixedKLController(kl.coef)
    return AdaptiveKLController(kl.coef, kl.target, kl.horizon)
