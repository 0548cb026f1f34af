"""The bundled data set shipped inside the package (made by scripts/make_dataset.py; see bundled/README.md)."""

from __future__ import annotations

from pathlib import Path

from rlhf_ads.errors import DataError

BUNDLED_DIR = Path(__file__).with_name("bundled")
BUNDLED_FILES = {"briefs": "briefs.jsonl", "sft": "sft.jsonl", "preferences": "preferences.jsonl",
                 "clicks": "clicks.jsonl"}
SPLITS = ("train", "validation", "heldout")


def bundled_file(kind: str) -> Path:
    """Path of one bundled file: briefs | sft | preferences | clicks."""
    if kind not in BUNDLED_FILES:
        raise DataError(f"no bundled data '{kind}'; bundled kinds: {', '.join(BUNDLED_FILES)}")
    return BUNDLED_DIR / BUNDLED_FILES[kind]


def parse_bundled_ref(source: str) -> tuple[str, str | None] | None:
    """'bundled:<kind>[:<split>]' -> (kind, split); any other string -> None.

    'bundled:heldout' is short for 'bundled:briefs:heldout'.
    """
    if not source.startswith("bundled:"):
        return None
    parts = source.split(":")[1:]
    if len(parts) == 1 and parts[0] in SPLITS:
        parts = ["briefs", parts[0]]
    kind, split = parts[0], (parts[1] if len(parts) > 1 else None)
    if split is not None and split not in SPLITS:
        raise DataError(f"'{source}': unknown split '{split}'; splits: {', '.join(SPLITS)}")
    bundled_file(kind)
    return kind, split
