"""Ad platforms' text limits, loaded from `platforms.yaml`, and the width rule they count by."""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

from rlhf_ads.errors import ConfigError


@dataclass(frozen=True)
class FieldSpec:
    """One text field of an ad format, e.g. the Google RSA headline."""

    platform: str
    field: str
    max_chars: int
    source: str


@dataclass(frozen=True)
class PlatformSpec:
    """An ad platform's text rules."""

    name: str
    display_name: str
    double_width_counts_twice: bool
    emoji_allowed: bool
    exclamation_in_headline: bool
    max_exclamations_per_ad: int
    hard_limits: bool
    fields: dict[str, FieldSpec]


@functools.cache
def platforms() -> dict[str, PlatformSpec]:
    """All platform specs by name (google_rsa, microsoft_rsa, meta)."""
    raw = yaml.safe_load((Path(__file__).with_name("platforms.yaml")).read_text(encoding="utf-8"))
    specs = {}
    for name, entry in raw.items():
        fields = {f: FieldSpec(name, f, v["max_chars"], v["source"]) for f, v in entry.pop("fields").items()}
        specs[name] = PlatformSpec(name=name, fields=fields, **entry)
    return specs


def platform_spec(platform: str) -> PlatformSpec:
    """One platform's spec; a clear error names the valid choices."""
    known = platforms()
    if platform not in known:
        raise ConfigError(f"unknown platform '{platform}'; known: {', '.join(known)}")
    return known[platform]


def field_spec(platform: str, field: str) -> FieldSpec:
    """The spec of one platform field; a clear error names the valid choices."""
    fields = platform_spec(platform).fields
    if field not in fields:
        raise ConfigError(f"platform '{platform}' has no field '{field}'; known: {', '.join(fields)}")
    return fields[field]


def text_width(text: str, double_width_counts_twice: bool = True) -> int:
    """Characters as ad platforms count them: wide (CJK) characters count 2 where the platform says so."""
    if not double_width_counts_twice:
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def width_for(text: str, platform: str) -> int:
    """`text_width` under one platform's counting rule."""
    return text_width(text, platforms()[platform].double_width_counts_twice)
