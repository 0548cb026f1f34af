"""PPO's prompt rows: briefs (their prompt rendered from the brief) or plain prompts, and the dataset columns
reward functions receive beside each completion."""

from __future__ import annotations

from pathlib import Path

from rlhf_ads.data import brief_from_row, data_options, load_rows
from rlhf_ads.data.gold import gold_utility

COLUMN_SKIP = {"_line", "brief", "prompt", "split"}


def load_prompt_rows(source, out_dir: Path) -> list[dict]:
    """Rows of a `DataSource` of briefs or prompts; brief rows carry their `Brief` under "brief"."""
    rows = load_rows(source.path, ("briefs", "prompts"), **data_options(source, out_dir))
    return [dict(r, brief=brief_from_row(r)) if "platform" in r and "brief" not in r else r for r in rows]


def reward_columns(rows: list[dict]) -> dict[str, list]:
    """Dataset columns for reward functions: the brief's fields for brief rows, else the row's own columns."""
    flat = [dict(row["brief"].to_dict(), **{k: v for k, v in row.items() if k not in COLUMN_SKIP})
            if row.get("brief") is not None else {k: v for k, v in row.items() if k not in COLUMN_SKIP} for row in rows]
    names = sorted({k for f in flat for k in f})
    return {name: [f.get(name) for f in flat] for name in names}


def mean_gold(rows: list[dict], texts: list[str]) -> float | None:
    """The gold utility's mean over the texts written for `rows`, or None unless every row is a brief."""
    if not all(row.get("brief") is not None for row in rows):
        return None
    return sum(gold_utility(row["brief"], text) for row, text in zip(rows, texts)) / len(rows)
