"""Weighted composition of reward components, each optionally normalized (running mean/std) and clipped.

    total_i = sum_c weight_c * clip(normalize(raw_c,i))      (a component that returns None adds 0)
    total_i = min over firing vetoes of veto_c                (where some component with a veto has raw_c,i < 0)

A veto makes a component a hard rule: an ad the platform would reject (`length_limit` < 0) earns the veto's
value whatever the other components give, so no reward-model score can buy an overrun back.

Every component's raw and weighted means are reported under `reward/<name>` and
`reward/<name>_weighted`; normalization follows PPO-max (Zheng et al. 2023, arXiv 2307.04964).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from rlhf_ads.rewards.protocol import checked_call
from rlhf_ads.rewards.resolve import resolve_reward


@dataclass
class RunningMoments:
    """Running mean and (population) std over every value seen, merged batch by batch (Chan et al.)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, values: list[float]) -> None:
        if not values:
            return
        n = len(values)
        batch_mean = sum(values) / n
        batch_m2 = sum((v - batch_mean) ** 2 for v in values)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta ** 2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 1.0

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), float(state["mean"]), float(state["m2"])


@dataclass
class RewardComponent:
    """One reward in the mix. `clip` bounds the (normalized) value to [-clip, clip]; `veto`, when set, replaces
    the sample's whole total where this component's raw value is negative."""

    name: str
    fn: Callable
    weight: float = 1.0
    normalize: bool = False
    clip: float | None = None
    veto: float | None = None
    moments: RunningMoments = field(default_factory=RunningMoments)

    def vetoes(self, raw: list[float | None]) -> list[bool]:
        """Per sample: whether this component's veto fires (set, and the raw value below 0)."""
        return [self.veto is not None and v is not None and v < 0 for v in raw]

    def transform(self, values: list[float | None], running: bool = True) -> list[float | None]:
        """Raw values -> normalized and clipped values (None stays None), updating the running moments. With
        `running` False the values skip the running normalization and leave it as it is (validation scores,
        which must compare across steps and must not move the training's normalization)."""
        if self.normalize and running:
            self.moments.update([v for v in values if v is not None])
            scale = self.moments.std if self.moments.std > 1e-8 else 1.0
            values = [None if v is None else (v - self.moments.mean) / scale for v in values]
        if self.clip is not None:
            values = [None if v is None else max(-self.clip, min(self.clip, v)) for v in values]
        return values


@dataclass
class RewardResult:
    """Scores of one batch. total: one float per completion; raw/weighted: per component name; vetoed: per
    completion, whether a veto set its total (None when no component has one)."""

    total: list[float]
    raw: dict[str, list[float | None]]
    weighted: dict[str, list[float]]
    vetoed: list[bool] | None = None

    def raw_means(self) -> dict[str, float]:
        """name -> the component's mean raw value over the samples it applies to (components that apply to
        none are left out)."""
        applicable = {name: [v for v in values if v is not None] for name, values in self.raw.items()}
        return {name: sum(values) / len(values) for name, values in applicable.items() if values}

    def metrics(self) -> dict[str, float]:
        """Namespaced means: reward/<name> (raw, over applicable samples), reward/<name>_weighted, reward/total,
        and reward/vetoed (the share of samples a veto scored) when the mix has a veto."""
        out = {f"reward/{name}": mean for name, mean in self.raw_means().items()}
        out.update({f"reward/{name}_weighted": sum(v) / max(1, len(v)) for name, v in self.weighted.items()})
        out["reward/total"] = sum(self.total) / max(1, len(self.total))
        if self.vetoed is not None:
            out["reward/vetoed"] = sum(self.vetoed) / max(1, len(self.vetoed))
        return out


class CompositeReward:
    """A weighted sum of reward components; itself a reward function (returns the totals)."""

    def __init__(self, components: list[RewardComponent]):
        names = [c.name for c in components]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"reward names must be unique; '{duplicates[0]}' appears twice (set `name:`)")
        self.components = components

    @classmethod
    def from_specs(cls, specs: list[Any]) -> "CompositeReward":
        """Build from recipe entries with .name, .function, .kwargs, .weight, .normalize, .clip, .veto."""
        return cls([RewardComponent(name=s.name or s.function.rsplit(":", 1)[-1], fn=resolve_reward(s.function, s.kwargs),
                                    weight=s.weight, normalize=s.normalize, clip=s.clip, veto=s.veto) for s in specs])

    def score(self, completions: list[str], prompts: list[str], *, running_normalization: bool = True,
              **columns: list[Any]) -> RewardResult:
        """Score a batch with every component; `running_normalization=False` scores components that normalize
        with their raw values and leaves the running statistics as they are."""
        total = [0.0] * len(completions)
        floor: list[float | None] = [None] * len(completions)  # the lowest veto that fires on each sample
        raw, weighted = {}, {}
        for component in self.components:
            values = checked_call(component.name, component.fn, completions, prompts, columns)
            raw[component.name] = values
            transformed = component.transform(values, running_normalization)
            contributions = [0.0 if v is None else component.weight * v for v in transformed]
            weighted[component.name] = contributions
            total = [t + c for t, c in zip(total, contributions)]
            for i, fires in enumerate(component.vetoes(values)):
                if fires:
                    floor[i] = component.veto if floor[i] is None else min(floor[i], component.veto)
        if not any(c.veto is not None for c in self.components):
            return RewardResult(total=total, raw=raw, weighted=weighted)
        total = [t if f is None else f for t, f in zip(total, floor)]
        return RewardResult(total=total, raw=raw, weighted=weighted, vetoed=[f is not None for f in floor])

    def __call__(self, completions: list[str], prompts: list[str], **columns: list[Any]) -> list[float]:
        return self.score(completions, prompts, **columns).total

    @property
    def observes_rollouts(self) -> bool:
        """Whether some component learns from the rollouts (then PPO calls `observe` with each batch)."""
        return any(_learns_from_rollouts(c.fn) for c in self.components)

    def observe(self, completions: list[str]) -> None:
        """Show the components that learn from the rollouts (`recent_diversity`, or any function with `observe`,
        `state_dict` and `load_state_dict`) a batch PPO sampled. Scoring alone never does."""
        for component in self.components:
            if _learns_from_rollouts(component.fn):
                component.fn.observe(completions)

    def state_dict(self) -> dict[str, dict]:
        """Per component, for checkpoints: its normalization moments, plus, for a function that learns from the
        rollouts, its own `state_dict()` under "function" (a plugin's torch module, which observes nothing,
        keeps its weights out of the checkpoint's JSON)."""
        state = {}
        for c in self.components:
            state[c.name] = c.moments.state_dict()
            if _learns_from_rollouts(c.fn):
                state[c.name]["function"] = c.fn.state_dict()
        return state

    def load_state_dict(self, state: dict[str, dict]) -> None:
        for component in self.components:
            if component.name in state:
                component.moments.load_state_dict(state[component.name])
                if "function" in state[component.name] and _learns_from_rollouts(component.fn):
                    component.fn.load_state_dict(state[component.name]["function"])


def _learns_from_rollouts(fn: Callable) -> bool:
    """A reward function with state learned from PPO's rollouts: `observe`, `state_dict` and `load_state_dict`."""
    return all(hasattr(fn, method) for method in ("observe", "state_dict", "load_state_dict"))
