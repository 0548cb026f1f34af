"""The recipe's reward mix as TRL reward functions (GRPO, RLOO): one per component, named after it (TRL logs
rewards/<name>/mean and /std), with the recipe's weights as TRL's `reward_weights`.

TRL calls `fn(prompts=..., completions=..., completion_ids=..., trainer_state=..., log_extra=..., log_metric=...,
**dataset columns)`. Ours is `fn(completions, prompts, **columns)` with the brief's fields as columns
(`rlhf_ads.data.reward_columns`). The training dataset carries one extra column, the prompt row's index, through
which each component gets exactly the columns PPO would give it; TRL's own arguments stay with TRL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

from rlhf_ads.data import reward_columns
from rlhf_ads.rewards import CompositeReward, RewardComponent, checked_call

ROW = "row_index"  # the dataset column naming each prompt's row


def prompt_dataset(prompts: list[str]) -> datasets.Dataset:
    """TRL's prompt-only dataset: the rendered prompt text and the row's index."""
    return datasets.Dataset.from_dict({"prompt": prompts, ROW: list(range(len(prompts)))})


class ComponentReward:
    """One component of the mix in TRL's calling convention. Plugin errors and non-finite values raise our
    RewardError naming the component and the sample (rewards.protocol.checked_call); None stays "not applicable"
    (TRL reads it as NaN and leaves it out of the weighted sum, as our mix adds 0); normalization and clipping are
    the component's own. The raw mean is logged as reward/<name>, as PPO logs it."""

    def __init__(self, component: RewardComponent, columns: dict[str, list[Any]]):
        self.component, self.columns = component, columns
        self.__name__ = component.name  # the name TRL logs the component under

    def __call__(self, prompts: list[str], completions: list[str], log_metric=None, **trl_arguments) -> list:
        rows = trl_arguments[ROW]  # (B * G,) each completion's prompt row
        columns = {name: [values[i] for i in rows] for name, values in self.columns.items()}
        texts = [c.strip() for c in completions]  # as our sampler decodes (generation.generate_batches)
        values = checked_call(self.component.name, self.component.fn, texts, prompts, columns)
        applicable = [v for v in values if v is not None]
        if log_metric is not None and applicable:
            log_metric(f"reward/{self.component.name}", sum(applicable) / len(applicable))
        return self.component.transform(values)


def trl_reward_functions(rewards: CompositeReward, rows: list[dict]) -> tuple[list[ComponentReward], list[float]]:
    """(reward_funcs, reward_weights) for TRL from the recipe's mix and the prompt rows the dataset indexes."""
    columns = reward_columns(rows)
    return ([ComponentReward(c, columns) for c in rewards.components],
            [c.weight for c in rewards.components])


class NormalizationState:
    """The mix's running normalization (rewards with `normalize: true`), kept in every checkpoint and restored
    on resume, as PPO's checkpoints keep it; the main process's statistics, loaded on every rank."""

    FILE = "reward_normalization.json"

    def __init__(self, rewards: CompositeReward):
        self.rewards = rewards

    def save(self, folder: Path) -> None:
        (folder / self.FILE).write_text(json.dumps(self.rewards.state_dict()))

    def load(self, folder: Path) -> None:
        if (folder / self.FILE).is_file():  # checkpoints written before it was kept
            self.rewards.load_state_dict(json.loads((folder / self.FILE).read_text()))
