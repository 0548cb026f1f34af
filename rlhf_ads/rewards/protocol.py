"""The reward-function protocol, and the checked call that turns a plugin's mistakes into clear errors.

A reward function is a plain callable, the convention TRL's GRPO/RLOO `reward_funcs` use:

    def reward(completions: list[str], prompts: list[str], **columns) -> list[float | None]

Dataset columns (keywords, platform, field, brand, ...) arrive as keyword lists aligned
with `completions`. `None` means "not applicable to this sample". A class with `__call__`
may hold state loaded once (a model). One that learns from the rollouts (`recent_diversity`) also has
`observe(completions)`, which PPO calls with every sampled batch, and `state_dict()` / `load_state_dict()`,
which PPO's checkpoints carry so that a resumed run scores as the uninterrupted one.
"""

from __future__ import annotations

import math
import traceback
from typing import Any, Callable, Protocol

from rlhf_ads.errors import RlhfAdsError


class RewardFunction(Protocol):
    def __call__(self, completions: list[str], prompts: list[str], **columns: list[Any]) -> list[float | None]: ...


class RewardError(RlhfAdsError):
    """A reward plugin failed: the message names the plugin, the sample index and its text."""


def _excerpt(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _first_failing_sample(fn: Callable, completions: list[str], prompts: list[str], columns: dict[str, list[Any]],
                          batch_error: Exception) -> tuple[int | None, Exception]:
    """Re-run the plugin one sample at a time to find the first it raises on: (index, that error), or
    (None, the batch's error) when every sample alone passes."""
    for index in range(len(completions)):
        try:
            fn(completions[index:index + 1], prompts[index:index + 1],
               **{key: values[index:index + 1] for key, values in columns.items()})
        except Exception as exc:  # noqa: BLE001 - any error of the plugin's own
            return index, exc
    return None, batch_error


def _plugin_traceback(exc: BaseException, frames: int = 3) -> str:
    """The last `frames` frames of the error's traceback (the plugin's own code, innermost last), indented."""
    lines = traceback.format_tb(exc.__traceback__)[1:][-frames:]  # [0] is checked_call's own frame
    return "".join(lines).rstrip() or "  (no traceback)"


def checked_call(name: str, fn: Callable, completions: list[str], prompts: list[str],
                 columns: dict[str, list[Any]]) -> list[float | None]:
    """Call a reward function and check what it returns: one finite float (or None) per completion."""
    try:
        values = fn(completions, prompts, **columns)
    except RewardError:
        raise
    except Exception as exc:
        index = getattr(exc, "sample_index", None)
        if index is None and len(completions) > 1:
            index, exc = _first_failing_sample(fn, completions, prompts, columns, exc)
        where = f" on sample {index}: {_excerpt(completions[index])}" if index is not None else (
            f" on a batch of {len(completions)} starting with {_excerpt(completions[0])}" if completions else "")
        raise RewardError(f"reward '{name}' raised {type(exc).__name__}: {exc}{where}\n"
                          f"{_plugin_traceback(exc)}") from exc
    try:
        values = list(values)
    except TypeError:
        raise RewardError(f"reward '{name}' returned {type(values).__name__}; expected a list of floats "
                          f"(or None), one per completion") from None
    if len(values) != len(completions):
        raise RewardError(f"reward '{name}' returned {len(values)} values for {len(completions)} completions")
    checked: list[float | None] = []
    for index, value in enumerate(values):
        if value is None:
            checked.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise RewardError(f"reward '{name}' returned {type(value).__name__} {value!r} at sample {index} "
                              f"{_excerpt(completions[index])}; expected a float or None")
        value = float(value)
        if not math.isfinite(value):
            raise RewardError(f"reward '{name}' returned {value} at sample {index}: {_excerpt(completions[index])}")
        checked.append(value)
    return checked
