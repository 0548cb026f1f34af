"""Stage `rloo`: REINFORCE Leave-One-Out (Ahmadian et al. 2024, arXiv:2402.14740) with TRL's RLOOTrainer, on the
recipe's reward mix, from the SFT adapter (the frozen reference of its KL term). Each completion's baseline is the
mean reward of the other completions of its prompt. The steps are stages/online.py's."""

from __future__ import annotations

from trl import RLOOConfig, RLOOTrainer

from rlhf_ads.config import Recipe
from rlhf_ads.stages.online import run_online

STAGE = "rloo"


def run(recipe: Recipe) -> dict:
    return run_online(recipe, STAGE, RLOOConfig, RLOOTrainer, normalize_advantages=recipe.rloo.normalize_advantages)
