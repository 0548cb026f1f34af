"""PPO's prompt rows: briefs (their prompt rendered from the brief) or plain prompts, and their mean gold."""

from __future__ import annotations

from pathlib import Path

from rlhf_ads.data import data_options, load_prompts
from rlhf_ads.data.gold import row_gold


def load_prompt_rows(source, out_dir: Path) -> list[dict]:
    """Rows of a `DataSource` of prompts or briefs (`load_prompts`); brief rows carry their `Brief` under "brief"."""
    return load_prompts(source.path, **data_options(source, out_dir))


def mean_gold(rows: list[dict], texts: list[str]) -> float | None:
    """The gold utility's mean over the texts written for `rows`, or None unless every row is a brief with a
    platform limit (the gold utility's length fit needs it)."""
    golds = [row_gold(row, text) for row, text in zip(rows, texts)]
    return None if None in golds else sum(golds) / len(golds)
