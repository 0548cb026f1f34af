"""Readers for every data format we take: JSONL, CSV, Parquet, a `save_to_disk` folder, an in-memory Dataset.

Each reader yields `Record`s: the row as a dict plus where it came from
("file.csv:line 7", "file.parquet:row 3"), so any later problem names its place.
A line that cannot be read at all (bad bytes, bad JSON) becomes a record with
`problem` set instead of stopping the read, so `on_error: skip` can drop it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_ads.errors import DataError


@dataclass
class Record:
    """One data row and its origin. `problem` = (field, reason) when the row could not be parsed."""

    where: str
    row: dict[str, Any] = field(default_factory=dict)
    problem: tuple[str, str] | None = None


def read_records(source: Any, split: str | None = None) -> list[Record]:
    """Records from a path (.jsonl/.json, .csv, .parquet, save_to_disk folder) or a `datasets.Dataset`."""
    if not isinstance(source, (str, Path)):
        return _from_dataset(source, "dataset", split)
    path = Path(source)
    if path.is_dir():
        return _from_disk_folder(path, split)
    if not path.is_file():
        raise DataError(f"data file '{path}' not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _from_jsonl(path)
    if suffix == ".csv":
        return _from_csv(path)
    if suffix == ".parquet":
        return _from_parquet(path)
    raise DataError(f"'{path}': unknown data format '{suffix}'; use .jsonl, .csv, .parquet or a save_to_disk folder")


def _decoded_lines(path: Path) -> list[tuple[int, str | None, str]]:
    """(line number, text or None, reason) for every line; None where the bytes are not UTF-8."""
    lines = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                lines.append((number, raw.decode("utf-8"), ""))
            except UnicodeDecodeError as exc:
                lines.append((number, None, f"not UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})"))
    return lines


def _from_jsonl(path: Path) -> list[Record]:
    records = []
    for number, text, reason in _decoded_lines(path):
        where = f"{path}:{number}"
        if text is None:
            records.append(Record(where, problem=("(line)", reason)))
            continue
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            records.append(Record(where, problem=("(line)", f"invalid JSON ({exc.msg} at column {exc.colno})")))
            continue
        if not isinstance(row, dict):
            records.append(Record(where, problem=("(line)", f"expected a JSON object, got {type(row).__name__}")))
            continue
        records.append(Record(where, row))
    return records


def _from_csv(path: Path) -> list[Record]:
    lines = _decoded_lines(path)
    bad = {number: reason for number, text, reason in lines if text is None}
    text = "".join(t if t is not None else "\n" for _, t, _ in lines)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records = [Record(f"{path}:{number}", problem=("(line)", reason)) for number, reason in bad.items()]
    for row in reader:
        number = reader.line_num
        if number in bad or not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        if None in row:  # more cells than header columns
            records.append(Record(f"{path}:{number}", problem=("(line)", "more cells than header columns")))
            continue
        records.append(Record(f"{path}:{number}", {k: _csv_cell(v) for k, v in row.items()}))
    return sorted(records, key=lambda r: int(r.where.rsplit(":", 1)[1]))


def _csv_cell(value: str | None) -> Any:
    """CSV cells stay text, except JSON lists (e.g. keywords); counts are checked and cast by validation."""
    if value is not None and value.strip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _from_parquet(path: Path) -> list[Record]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several kinds for a damaged file
        raise DataError(f"'{path}' is not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    return [Record(f"{path}:row {i}", row) for i, row in enumerate(rows)]


def _from_disk_folder(path: Path, split: str | None) -> list[Record]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"folder '{path}' is not a datasets save_to_disk folder ({exc})") from None
    return _from_dataset(loaded, str(path), split)


def _from_dataset(dataset: Any, name: str, split: str | None) -> list[Record]:
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        chosen = split or ("train" if "train" in dataset else None)
        if chosen not in dataset:
            raise DataError(f"'{name}' has splits {', '.join(dataset)}; choose one with the data source's `split`")
        dataset, name = dataset[chosen], f"{name}[{chosen}]"
    if not isinstance(dataset, datasets.Dataset):
        raise DataError(f"expected a datasets.Dataset, a DatasetDict or a path, got {type(dataset).__name__}")
    return [Record(f"{name}:row {i}", dict(row)) for i, row in enumerate(dataset)]
