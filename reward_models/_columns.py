"""Helpers shared by the shipped rewards: one value per sample from a column or a recipe argument, and each
sample's brief from the brief columns."""

from __future__ import annotations

from typing import Any

from rlhf_ads.rewards import Brief, brief_from_row


def per_sample(value: Any, n: int) -> list[Any]:
    """A scalar column (list of n values) as is; a single recipe value repeated n times."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"column has {len(value)} values for {n} completions")
        return list(value)
    return [value] * n


def per_sample_lists(value: Any, n: int) -> list[list[str] | None]:
    """A list-valued column (list of n lists) as is; one shared list (of strings) repeated n times."""
    if value is None:
        return [None] * n
    if isinstance(value, (list, tuple)) and all(v is None or isinstance(v, (list, tuple)) for v in value):
        if len(value) != n:
            raise ValueError(f"column has {len(value)} values for {n} completions")
        return [None if v is None else list(v) for v in value]
    return [list(value)] * n


def sample_briefs(prompts: list[str], columns: dict) -> list[Brief | None]:
    """Each sample's Brief from the brief columns, or None for a sample without a product (a plain prompt)."""
    rows = [{k: v[i] for k, v in columns.items() if isinstance(v, list) and len(v) == len(prompts)}
            for i in range(len(prompts))]
    return [brief_from_row(row) if row.get("product") else None for row in rows]
