"""`rlhf-ads lint`: the platform and policy rules (rlhf_ads.lint.rules) over a file of ads."""

from __future__ import annotations

from pathlib import Path

from rlhf_ads.data.formats import read_records
from rlhf_ads.errors import DataError
from rlhf_ads.lint.rules import context_for, lint

TEXT_COLUMNS = ("ad", "text", "completion")


def _ads(path: Path) -> list[tuple[str, dict]]:
    """(place, row) per ad: a plain text file is one ad per line."""
    if path.suffix.lower() in (".jsonl", ".json", ".csv", ".parquet"):
        rows = []
        for record in read_records(path):
            if record.problem is not None:
                raise DataError(f"{record.where}: {record.problem[1]}")
            column = next((c for c in TEXT_COLUMNS if isinstance(record.row.get(c), str)), None)
            if column is None:
                raise DataError(f"{record.where}: no text column; expected one of {', '.join(TEXT_COLUMNS)}")
            rows.append((record.where, dict(record.row, ad=record.row[column])))
        return rows
    if not path.is_file():
        raise DataError(f"file '{path}' not found")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [(f"{path}:{number}", {"ad": line}) for number, line in enumerate(lines, start=1) if line.strip()]


def lint_file(path: str, platform: str | None = None, field: str | None = None, prohibited_terms: list[str] = (),
              supported_claims: list[str] = ()) -> tuple[list[tuple[str, object]], int, int]:
    """([(place, Violation)], ads checked, ads whose length limit was not checked for want of a platform and
    field). A row's own platform/field columns win over the defaults."""
    found, unchecked = [], 0
    ads = _ads(Path(path))
    for where, row in ads:
        ctx = context_for(row.get("platform") or platform, row.get("field") or field,
                          prohibited_terms=prohibited_terms, supported_claims=supported_claims)
        unchecked += ctx.platform is None or ctx.field is None
        found.extend((where, violation) for violation in lint(row["ad"].strip(), ctx))
    return found, len(ads), unchecked
