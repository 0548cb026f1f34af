"""Validation during PPO: every `ppo.eval_every` steps the policy's greedy ads for the validation prompts are scored
by the proxy and the gold utility (rlhf_ads.evaluation.validation, shared with GRPO and RLOO), logged as
ppo/eval/*. The policy with the best validation proxy so far is kept in <ppo>/best/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rlhf_ads import checkpoint, processes
from rlhf_ads.evaluation.validation import ValidationPrompts
from rlhf_ads.rewards import CompositeReward
from rlhf_ads.storage import atomic_write_text

BEST = "best"  # <ppo>/best/: the policy adapter with the best validation proxy, and BEST_RECORD
BEST_RECORD = "best.json"  # <ppo>/best/best.json: the kept policy's step and its ppo/eval/* metrics
EVAL_LOG = "eval.jsonl"  # <ppo>/eval.jsonl: one line of ppo/eval/* metrics per validation


class Validation:
    """The fixed validation prompts of one PPO run and the best proxy seen so far."""

    def __init__(self, recipe, tokenizer, rewards: CompositeReward, out_dir: Path, start_step: int):
        cfg = recipe.ppo
        self.prompts = ValidationPrompts(cfg.eval_prompts, cfg.eval_num_prompts, tokenizer, out_dir,
                                         recipe.evaluate.max_new_tokens)
        self.rewards, self.out_dir = rewards, out_dir
        self.best = self._saved_best(start_step)

    def _saved_best(self, start_step: int) -> float | None:
        """The best proxy a resumed run competes with: the kept policy's, unless it came from a step after the
        checkpoint the run resumes from (or the run starts afresh), when it is removed with its log lines."""
        path = self.out_dir / BEST / BEST_RECORD
        kept = json.loads(path.read_text()) if start_step > 0 and path.is_file() else None
        if kept is not None and kept["step"] <= start_step:
            return kept["ppo/eval/reward"]
        if processes.is_main_process():
            shutil.rmtree(self.out_dir / BEST, ignore_errors=True)
            if start_step == 0:
                (self.out_dir / EVAL_LOG).unlink(missing_ok=True)  # a fresh run's curve starts empty
        return None

    def score(self, model) -> dict[str, float]:
        """ppo/eval/reward (the proxy), ppo/eval/<component> and, for briefs, ppo/eval/gold of `model`'s greedy ads."""
        return self.prompts.score(model, self.rewards, "ppo/eval")

    def keep_if_best(self, step: int, metrics: dict[str, float], save_policy) -> bool:
        """When the proxy beats the best so far, `save_policy(folder)` writes the policy adapter into a staging
        folder that then replaces <ppo>/best/ (with best.json: the step and its metrics). True when it did."""
        if self.best is not None and metrics["ppo/eval/reward"] <= self.best:
            return False
        staging = self.out_dir / f".partial-{BEST}"  # a save that raised half-way is overwritten
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        save_policy(staging)
        atomic_write_text(staging / BEST_RECORD, json.dumps({"step": step, **metrics}, indent=2))
        checkpoint.publish(staging, self.out_dir / BEST)
        self.best = metrics["ppo/eval/reward"]
        return True
