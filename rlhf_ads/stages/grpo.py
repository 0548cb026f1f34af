"""Stage `grpo`: Group Relative Policy Optimization (Shao et al. 2024, arXiv:2402.03300) with TRL's GRPOTrainer, on
the recipe's reward mix, from the SFT adapter (the frozen reference of its KL term). Each completion's advantage is
its reward minus the mean of its prompt's group, scaled by grpo.scale_rewards. The steps are stages/online.py's."""

from __future__ import annotations

from trl import GRPOConfig, GRPOTrainer

from rlhf_ads.config import Recipe
from rlhf_ads.stages.online import run_online

STAGE = "grpo"


def run(recipe: Recipe) -> dict:
    cfg = recipe.grpo
    return run_online(recipe, STAGE, GRPOConfig, GRPOTrainer, scale_rewards=cfg.scale_rewards,
                      loss_type=cfg.loss_type)
