"""Sections of the stages beyond PPO, on TRL's maintained trainers: `dpo` (offline, on the designer preferences)
and `grpo` / `rloo` (online, on the recipe's reward mix). Each starts from the SFT adapter and keeps it, frozen, as
the reference its KL term or implicit reward is measured against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rlhf_ads.config_common import DataSource, HFTrainingSettings, TrainerSettings
from rlhf_ads.config_schema import derived, option

SFT_HELP = "SFT stage output folder to start from (and to keep, frozen, as the reference); default <run>/sft."


@dataclass
class DPOStageConfig:
    """Stage `dpo`: Direct Preference Optimization (Rafailov et al. 2023, arXiv:2305.18290) on the designer
    preferences, no reward model: TRL's DPOTrainer on the SFT adapter."""

    train: DataSource = option(help="Preference pairs (preferences kind), the reward stage's data by default.",
                               factory=lambda: DataSource("bundled:preferences:train"))
    eval: DataSource = option(help="Held-out pairs: the implicit reward's accuracy on them is dpo/eval_accuracy.",
                              factory=lambda: DataSource("bundled:preferences:heldout"))
    sft: str | None = option(None, help=SFT_HELP)
    beta: float = option(0.1, help=(
        "Strength of the KL constraint to the reference (the paper's beta): higher keeps the policy closer to SFT."))
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = option("sigmoid", help=(
        "'sigmoid': the DPO loss; 'ipo': IPO (Azar et al. 2023), which does not overfit deterministic preferences; "
        "'hinge': SLiC; 'robust': DPO robust to label noise (Chowdhury et al. 2024)."))
    training: TrainerSettings = option(help="Optimizer, schedule and checkpoints (batch_size counts pairs).",
                                       factory=lambda: TrainerSettings(learning_rate=5e-5, max_eval_rows=200))

    def __post_init__(self):
        if self.beta <= 0:
            raise ValueError(f"dpo.beta must be > 0, got {self.beta}")


@dataclass
class OnlineTrainingSettings(HFTrainingSettings):
    """`grpo.training` / `rloo.training`: the HF settings with the online stages' defaults (their steps and batch
    are the section's own)."""

    learning_rate: float = option(5e-5, help="AdamW learning rate for the LoRA adapter.")
    warmup_ratio: float = option(0.0, help="Share of steps with linear learning-rate warm-up.")
    logging_steps: int = option(1, help="Log training metrics (reward components, KL, lengths) every N steps.")
    save_steps: int = option(5, help="Save a checkpoint every N steps (resume continues from the newest).")


@dataclass
class OnlineRLConfig:
    """What GRPO and RLOO share: prompts, sampling, the KL leash and validation. Each step samples
    `num_generations` completions for each of `prompts_per_step` prompts and scores them with the recipe's reward
    mix (one TRL reward function per component, weighted by the recipe's weights); a completion's advantage is its
    reward against the other completions of its prompt."""

    prompts: DataSource | None = option(None, help=(
        "Prompts: briefs or rows with a prompt; default ppo.prompts, so that every online method samples from the "
        "same prompts."))
    sft: str | None = option(None, help=SFT_HELP)
    steps: int = option(20, help=(
        "Steps: each samples a fresh batch of completions and takes num_iterations optimizer steps on it (as a PPO "
        "step samples one batch and takes ppo_epochs passes)."))
    prompts_per_step: int = option(2, help="Prompts per step.")
    num_generations: int = option(4, help="Completions sampled per prompt (the group; at least 2).")
    max_new_tokens: int = option(32, help="Completion budget in tokens.")
    temperature: float = option(0.7, help="Sampling temperature (log-probs are computed from logits / temperature).")
    top_p: float = option(1.0, help="Nucleus sampling mass.")
    beta: float = option(0.05, help="KL coefficient to the reference (the SFT adapter); 0 loads no reference.")
    epsilon: float = option(0.2, help="Clip range of the policy ratio.")
    num_iterations: int = option(1, help="Optimizer steps on each batch of completions (mu in the GRPO paper).")
    eval_every: int = option(0, help=(
        "Every N steps (and before the first and after the last), one greedy ad per validation prompt, scored by "
        "the reward mix (<stage>/eval/reward) and, for briefs, the gold utility (<stage>/eval/gold), with the "
        "completions sampled so far (<stage>/eval/completions). 0: off."))
    eval_prompts: DataSource | None = option(None, help=(
        "Validation prompts for eval_every; default ppo.eval_prompts, so that the methods' curves compare."))
    eval_num_prompts: int | None = option(None, help="How many validation prompts (with the source's mix of ad "
                                                     "targets); default ppo.eval_num_prompts.")
    training: OnlineTrainingSettings = option(help="Optimizer, logging and checkpoints.", factory=OnlineTrainingSettings)
    completions_per_step: int = derived(help="prompts_per_step x num_generations: completions sampled per step.")

    def __post_init__(self):
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (the advantage compares completions of one prompt), got "
                             f"{self.num_generations}")
        if min(self.steps, self.prompts_per_step, self.max_new_tokens, self.num_iterations) < 1:
            raise ValueError("steps, prompts_per_step, max_new_tokens and num_iterations must all be >= 1")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0 (online RL samples its completions)")
        if self.eval_every < 0 or (self.eval_num_prompts is not None and self.eval_num_prompts < 1):
            raise ValueError(f"eval_every must be >= 0 (0: off) and eval_num_prompts >= 1, got {self.eval_every} "
                             f"and {self.eval_num_prompts}")
        self.completions_per_step = self.prompts_per_step * self.num_generations
        if self.completions_per_step % self.training.grad_accum:
            raise ValueError(f"prompts_per_step x num_generations ({self.completions_per_step}) must be a multiple of "
                             f"training.grad_accum ({self.training.grad_accum})")


@dataclass
class GRPOStageConfig(OnlineRLConfig):
    """Stage `grpo`: Group Relative Policy Optimization (Shao et al. 2024, arXiv:2402.03300) with TRL's
    GRPOTrainer: the advantage is the reward minus its group's mean, scaled as scale_rewards says."""

    scale_rewards: Literal["group", "batch", "none"] = option("group", help=(
        "Divide advantages by the group's reward std ('group', the paper), the batch's ('batch') or not at all "
        "('none', Dr. GRPO's advice against a difficulty bias)."))
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = option("dapo", help=(
        "How token losses are averaged: 'grpo' per sequence (length-biased), 'dapo' over the batch's tokens "
        "(TRL's default), 'dr_grpo' over a constant, 'bnpo' over the local batch's tokens."))


@dataclass
class RLOOStageConfig(OnlineRLConfig):
    """Stage `rloo`: REINFORCE Leave-One-Out (Ahmadian et al. 2024, arXiv:2402.14740) with TRL's RLOOTrainer: the
    baseline of each completion is the mean reward of the other completions of its prompt."""

    normalize_advantages: bool = option(False, help="Standardize the advantages over each batch.")
