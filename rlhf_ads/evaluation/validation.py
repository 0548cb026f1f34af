"""Validation during RL training (ppo, grpo, rloo: `eval_every`): the policy writes one greedy ad for each of a fixed
set of validation prompts (`ppo.eval_prompts` by default for every method, so that their curves compare; never the
held-out ones `evaluate` reports on). The ads are scored by the reward mix the policy optimizes (the
proxy) and, for briefs, by the gold utility, side by side, so over-optimization shows as a proxy that climbs while
gold does not."""

from __future__ import annotations

from pathlib import Path

from rlhf_ads.data import (data_options, load_prompts, render_row_prompt, representative_rows, reward_columns,
                           within_limit_shares)
from rlhf_ads.data.gold import mean_gold
from rlhf_ads.evaluation.metrics import distinct_n, top_opening_share
from rlhf_ads.generation import generate_completions


class ValidationPrompts:
    """The fixed validation prompts of one run, rendered for the policy's tokenizer."""

    def __init__(self, source, count: int, tokenizer, out_dir: Path, max_new_tokens: int):
        """source: a `DataSource` of briefs or prompts, of which `count` validate, with the source's mix of ad
        targets (representative_rows). max_new_tokens: `evaluate`'s budget, not the rollouts', so that the curve
        scores ads as the report will (a rollout's budget cuts ads that evaluation lets run over their limit)."""
        self.rows = representative_rows(load_prompts(source.path, **data_options(source, out_dir)), count)
        self.prompts = [render_row_prompt(r, tokenizer) for r in self.rows]
        self.columns = reward_columns(self.rows)
        self.tokenizer, self.max_new_tokens = tokenizer, max_new_tokens

    def score(self, model, rewards, prefix: str) -> dict[str, float]:
        """Greedy ads from `model` -> <prefix>/reward (the proxy: the reward mix's weighted total `rewards` gives, with
        raw values for components under running normalization, so that every validation is scored alike and the
        training's statistics stay as they are), <prefix>/<component> (raw means), <prefix>/distinct_2 and
        <prefix>/top_opening_share (what over-optimization costs in diversity: templates), <prefix>/within_limit
        (the share of ads with a limit that keep it) and <prefix>/within_limit/<platform>/<field> per ad target,
        and, when every row is a brief with a limit, <prefix>/gold."""
        ads = generate_completions(model, self.tokenizer, self.prompts, max_new_tokens=self.max_new_tokens,
                                   temperature=0.0, batch_size=len(self.prompts))
        scored = rewards.score(ads, self.prompts, running_normalization=False, **self.columns)
        metrics = {f"{prefix}/{name}": mean for name, mean in scored.raw_means().items()}
        metrics[f"{prefix}/reward"] = sum(scored.total) / len(ads)
        metrics[f"{prefix}/distinct_2"] = distinct_n(ads, 2)
        metrics[f"{prefix}/top_opening_share"] = top_opening_share(ads)
        metrics.update({f"{prefix}/{key}": share for key, share in within_limit_shares(ads, self.rows).items()})
        if (gold := mean_gold(self.rows, ads)) is not None:
            metrics[f"{prefix}/gold"] = gold
        return metrics
