"""Validation for the online stages (grpo, rloo: `eval_every`), the curve PPO draws too: before the first step, every
`eval_every` steps and after the last, the policy's greedy ads for the shared validation prompts are scored
(rlhf_ads.evaluation.validation) and logged as <stage>/eval/reward, /gold, /<component>, with the completions
sampled so far as <stage>/eval/completions, so that methods compare at equal sampling cost."""

from __future__ import annotations

import logging

from transformers import Trainer, TrainerCallback
from trl.models import unwrap_model_for_generation

from rlhf_ads.evaluation.validation import ValidationPrompts

log = logging.getLogger(__name__)


def sampling_steps(optimizer_steps: int, num_iterations: int) -> int:
    """The batches of completions sampled by the time TRL has taken `optimizer_steps` steps: TRL samples a batch
    before each run of num_iterations optimizer steps on it."""
    return -(-optimizer_steps // num_iterations)


class ValidationCallback(TrainerCallback):
    """Scores the trainer's policy on the validation prompts at the steps above; the metrics join the trainer's log
    (its history, hence train_log.jsonl and checkpoints, and its trackers)."""

    def __init__(self, trainer, prompts: ValidationPrompts, rewards, stage: str, cfg):
        """cfg: the stage's section (eval_every and num_iterations in its steps, completions_per_step)."""
        self.trainer, self.prompts, self.rewards, self.cfg = trainer, prompts, rewards, cfg
        self.prefix = f"{stage}/eval"

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:  # where the curve starts: the SFT policy (a resumed run has it already)
            self.validate(0)

    def on_step_end(self, args, state, control, **kwargs):
        # TRL counts optimizer steps; a stage's step is one sampled batch and its num_iterations optimizer steps
        every = self.cfg.eval_every * self.cfg.num_iterations
        if state.global_step % every == 0 or state.global_step == state.max_steps:
            due = control.should_log
            self.validate(state.global_step)
            control.should_log = due  # logging resets it; the step's own training log is still due

    def validate(self, optimizer_step: int) -> dict[str, float]:
        trainer = self.trainer  # the policy as TRL's own sampling sees it: whole under ZeRO-3, no recomputation
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs) as policy:
            metrics = self.prompts.score(policy, self.rewards, self.prefix)
        sampled = sampling_steps(optimizer_step, self.cfg.num_iterations)
        metrics[f"{self.prefix}/completions"] = sampled * self.cfg.completions_per_step
        # the Trainer's own log: TRL's override would also flush the training metrics it is averaging
        Trainer.log(trainer, metrics)
        log.info("%s after %d completions: validation reward %.3f%s", self.prefix,
                 metrics[f"{self.prefix}/completions"], metrics[f"{self.prefix}/reward"],
                 f", gold {metrics[f'{self.prefix}/gold']:.3f}" if f"{self.prefix}/gold" in metrics else "")
        return metrics
