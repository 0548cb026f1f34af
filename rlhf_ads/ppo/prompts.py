"""PPO's prompt rows: briefs (their prompt rendered from the brief) or plain prompts."""

from __future__ import annotations

from pathlib import Path

from rlhf_ads.data import data_options, load_prompts


def load_prompt_rows(source, out_dir: Path) -> list[dict]:
    """Rows of a `DataSource` of prompts or briefs (`load_prompts`); brief rows carry their `Brief` under "brief"."""
    return load_prompts(source.path, **data_options(source, out_dir))
