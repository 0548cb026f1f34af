"""Loading data for a stage: read any format, map columns, filter the split, validate, join briefs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlhf_ads.data.briefs import Brief, brief_from_row
from rlhf_ads.data.bundled import bundled_file, parse_bundled_ref
from rlhf_ads.data.formats import Record, read_records
from rlhf_ads.data.validation import KINDS, guess_kind, validate
from rlhf_ads.errors import ConfigError, DataError


def load_rows(source: Any, kind: str | tuple[str, ...], *, split: str | None = None, columns: dict[str, str] | None = None,
              on_error: str = "error", max_text_chars: int = 2000, briefs: str | None = None,
              report_dir: Path | None = None) -> list[dict]:
    """Validated rows of one kind from a source.

    source: 'bundled:<kind>[:<split>]', a .jsonl/.csv/.parquet file, a save_to_disk folder, or a
    `datasets.Dataset`. kind: a kind, or a tuple of kinds to choose from by the columns.
    columns: {our name: your name}. Rows that point at a brief (`brief_id`)
    and have no prompt get the `Brief` under "brief", looked up in `briefs` (default: bundled briefs).
    """
    name = source if isinstance(source, str) else type(source).__name__
    ref = parse_bundled_ref(source) if isinstance(source, str) else None
    if ref is not None:
        bundled_kind, bundled_split = ref
        source, split = bundled_file(bundled_kind), split or bundled_split
        briefs = briefs or "bundled:briefs"
    records = read_records(source, split)
    if isinstance(kind, tuple):  # several kinds fit: the first readable row decides
        kind = guess_kind(next((r.row for r in records if r.problem is None), {}), kind)
    if columns:
        map_columns(records, columns, kind)
    if split is not None and any("split" in r.row for r in records):
        records = [r for r in records if r.problem is not None or r.row.get("split") == split]
    rows = validate(records, kind, on_error=on_error, max_text_chars=max_text_chars, source=name,
                    report_dir=report_dir)
    if kind != "briefs" and any("brief_id" in r and not r.get("prompt") for r in rows):
        _join_briefs(rows, briefs, name)
    return rows


def load_briefs(source: Any, **options) -> list[Brief]:
    """Validated briefs with ids, as brief_id columns point into ('bundled:heldout' is short for
    'bundled:briefs:heldout')."""
    return [brief_from_row(row) for row in load_rows(source, "briefs", **options)]


def load_prompts(source: Any, **options) -> list[dict]:
    """What generate, PPO and evaluate write for, validated as the 'prompts' kind (the rule `rlhf-ads data check`
    applies): plain prompts, conversations, brief_id references and briefs. A row that is a brief (a product and no
    prompt) or points at one carries its `Brief` under "brief"; the prompt is then rendered from it."""
    rows = load_rows(source, "prompts", **options)
    return [dict(r, brief=brief_from_row(r)) if r.get("brief") is None and _is_brief(r) else r for r in rows]


def _is_brief(row: dict) -> bool:
    return bool(row.get("product")) and not row.get("prompt") and not row.get("messages")


def data_options(source, report_dir: Path | None = None) -> dict[str, Any]:
    """`load_rows` keyword options from a recipe's `DataSource` (all but its path)."""
    return dict(split=source.split, columns=source.columns, on_error=source.on_error,
                max_text_chars=source.max_text_chars, briefs=source.briefs, report_dir=report_dir)


def map_columns(records: list[Record], columns: dict[str, str], kind: str) -> None:
    spec = KINDS[kind]
    ours = {c for alt in spec.alternatives for c in alt} | set(spec.text_fields) | set(spec.count_fields) | {
        "id", "designer_id", "keywords", "split"} | set(Brief.__dataclass_fields__)
    unknown = sorted(set(columns) - ours)
    if unknown:
        raise ConfigError(f"columns: '{unknown[0]}' is not a {kind} column; map one of {', '.join(sorted(ours))} "
                          "to your column's name, e.g. columns: {chosen: better_ad}")
    for record in records:
        for our_name, their_name in columns.items():
            if their_name in record.row:
                record.row[our_name] = record.row.pop(their_name)


def _join_briefs(rows: list[dict], briefs_source: str | None, name: str) -> None:
    if briefs_source is None:
        raise DataError(f"{name}: rows refer to brief_id but no briefs file is given; set the data source's `briefs`")
    by_id = {b.id: b for b in load_briefs(briefs_source)}
    for row in rows:
        if "brief_id" not in row or row.get("prompt"):
            continue
        brief = by_id.get(str(row["brief_id"]))
        if brief is None:
            raise DataError(f"{name}: brief_id {row['brief_id']!r} is not in {briefs_source}")
        row["brief"] = brief
