"""Reading data rows from files, with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

from rlhf_ads.data.briefs import Brief, brief_from_row
from rlhf_ads.data.bundled import bundled_file, parse_bundled_ref
from rlhf_ads.errors import DataError


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file, each with its 1-based `_line`; a bad line raises naming file and line."""
    if not path.is_file():
        raise DataError(f"data file '{path}' not found")
    rows = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not UTF-8 (byte {exc.start})") from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: each line must be a JSON object, got {type(row).__name__}")
            row["_line"] = number
            rows.append(row)
    return rows


def load_rows(source: str) -> list[dict]:
    """Rows from 'bundled:<kind>[:<split>]' or a JSONL file."""
    ref = parse_bundled_ref(source)
    if ref is None:
        return read_jsonl(Path(source))
    kind, split = ref
    rows = read_jsonl(bundled_file(kind))
    return [r for r in rows if split is None or r.get("split") == split]


def load_briefs(source: str) -> list[Brief]:
    """Briefs from a source; a row missing a brief field raises naming file, line and field."""
    briefs = []
    for row in load_rows(source):
        missing = [f for f in ("id", "product", "brand", "platform", "field") if not str(row.get(f) or "").strip()]
        if missing:
            raise DataError(f"{source}:{row['_line']}: field '{missing[0]}' is missing or empty")
        briefs.append(brief_from_row(row))
    if not briefs:
        raise DataError(f"{source}: no briefs found")
    return briefs
