"""Row validation for each data kind: every problem names its place (file and line, or row), field and reason.

Kinds and the column sets they accept (any one set must be complete):
- briefs:      id + product (a table that brief_id columns point into)
- sft:         prompt + completion | messages | brief_id + completion
- preferences: prompt + chosen + rejected | brief_id + chosen + rejected
- prompts:     prompt | messages | brief_id | product (what generate, PPO and evaluate write for: plain prompts,
               conversations, references to briefs, or briefs themselves)
- clicks:      prompt + ad + impressions + clicks | brief_id + ad + impressions + clicks

A brief needs only its product. Its other fields (brand, category, audience, tone, landing_page, vertical,
keywords) are optional, and so are platform and field, which go together: a platform needs the field whose
limit applies and a field needs its platform. Any row that names a platform (a brief or a plain prompt with
platform/field columns for the length rewards) is checked against platforms.yaml. Every kind is checked by
`row_problems`, so `rlhf-ads data check` and the stages accept the same rows.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlhf_ads.data.formats import Record
from rlhf_ads.errors import DataError
from rlhf_ads.platforms import platforms


@dataclass(frozen=True)
class Kind:
    """What one kind of data file must hold."""

    alternatives: tuple[tuple[str, ...], ...]
    text_fields: tuple[str, ...]  # checked when present: non-empty text
    count_fields: tuple[str, ...] = ()
    optional_text: tuple[str, ...] = ()  # may be absent or empty; checked as text when they hold some


BRIEF_OPTIONAL = ("brand", "platform", "field", "category", "audience", "tone", "landing_page", "vertical")

KINDS = {
    "briefs": Kind(alternatives=(("id", "product"),), text_fields=("id", "product"), optional_text=BRIEF_OPTIONAL),
    "sft": Kind(alternatives=(("prompt", "completion"), ("messages",), ("brief_id", "completion")),
                text_fields=("prompt", "completion")),
    "preferences": Kind(alternatives=(("prompt", "chosen", "rejected"), ("brief_id", "chosen", "rejected")),
                        text_fields=("prompt", "chosen", "rejected")),
    "prompts": Kind(alternatives=(("prompt",), ("messages",), ("brief_id",), ("product",)), text_fields=("prompt",),
                    optional_text=("product", *BRIEF_OPTIONAL)),
    "clicks": Kind(alternatives=(("prompt", "ad", "impressions", "clicks"), ("brief_id", "ad", "impressions", "clicks")),
                   text_fields=("prompt", "ad"), count_fields=("impressions", "clicks")),
}


@dataclass(frozen=True)
class Problem:
    """One reason a row cannot be used."""

    where: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: field '{self.field}': {self.reason}"


GUESSED = ("sft", "preferences", "prompts", "clicks")  # 'briefs' (a table brief_id points into) only when asked for


def _match(row: dict, name: str) -> tuple[float, int]:
    """(the largest share of one of kind `name`'s column sets that the row has, that set's size). A row with a
    brief's optional columns (brand, tone, ...) is at least half a brief: one that lacks its product."""
    kind = KINDS[name]
    briefish = 0.5 if any(c in row for c in kind.optional_text) else 0.0
    return max((max(sum(c in row for c in alt) / len(alt), briefish if "product" in alt else 0.0), len(alt))
               for alt in kind.alternatives)


def kind_coverage(row: dict, name: str) -> float:
    """The largest share of one of kind `name`'s column sets that the row has (see `_match`)."""
    return _match(row, name)[0]


def guess_kind(row: dict, candidates: tuple[str, ...] = GUESSED) -> str:
    """The kind (among `candidates`) whose column sets best match a row's columns; between kinds a row fits
    equally, the one whose matched set is larger (a click log is clicks, not prompts that happen to have a
    prompt). A brief is guessed as prompts, the kind generate, PPO and evaluate read."""
    return max(candidates, key=lambda name: _match(row, name))


def row_problems(row: dict, kind_name: str, where: str, max_text_chars: int) -> list[Problem]:
    """Everything wrong with one row of `kind_name` (empty list: the row is fine)."""
    kind = KINDS[kind_name]
    problems = []
    nan = [k for k, v in row.items() if isinstance(v, float) and math.isnan(v)]
    problems += [Problem(where, k, "NaN") for k in nan]
    complete = [alt for alt in kind.alternatives if all(_present(row.get(c)) for c in alt)]
    if not complete:
        closest = _closest(kind, row)
        missing = next(c for c in closest if not _present(row.get(c)))
        if missing not in nan:
            problems.append(Problem(where, missing, "missing" if missing not in row or row[missing] is None else "empty"))
    reported = {problem.field for problem in problems}  # one problem per field: "empty" is not also "whitespace"
    for name in kind.text_fields:
        value = row.get(name)
        if value is None or name in reported:
            continue
        if isinstance(value, list):  # TRL's conversational form: a list of {role, content}
            problems += _messages_problems(value, where, name, "assistant" if name != "prompt" else None)
        else:
            problems += text_problems(value, name, where, max_text_chars)
    for name in kind.optional_text:
        value = row.get(name)
        if name not in reported and name not in nan and _present(value):
            problems += text_problems(value, name, where, max_text_chars)
    for name in kind.count_fields:
        if name in row and row[name] is not None and name not in nan:
            problems += _count_problems(row, name, where)
    if "messages" in row and row["messages"] is not None:
        problems += _messages_problems(row["messages"], where, "messages", "assistant")
    if kind_name == "preferences" and _present(row.get("chosen")) and _stripped(row.get("chosen")) == _stripped(row.get("rejected")):
        problems.append(Problem(where, "rejected", "identical to chosen"))
    if kind_name == "clicks" and not problems and int(row["clicks"]) > int(row["impressions"]):
        problems.append(Problem(where, "clicks", f"clicks ({row['clicks']}) > impressions ({row['impressions']})"))
    if kind.optional_text and not problems:
        problems += _brief_problems(row, where)
    return problems


def _closest(kind: Kind, row: dict) -> tuple[str, ...]:
    """The column set a row comes nearest to completing; a row with brief columns is a brief missing its product."""
    briefish = any(_present(row.get(c)) for c in BRIEF_OPTIONAL)
    return max(kind.alternatives,
               key=lambda alt: (sum(_present(row.get(c)) for c in alt), briefish and "product" in alt))


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip()) and not (
        isinstance(value, float) and math.isnan(value))


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def text_problems(value: Any, name: str, where: str, max_chars: int) -> list[Problem]:
    """What is wrong with one text field's value (empty list: nothing)."""
    if not isinstance(value, str):
        return [Problem(where, name, f"expected text, got {type(value).__name__}")]
    if not value.strip():
        return [Problem(where, name, "empty or whitespace")]
    if value.strip().lower() == "nan":
        return [Problem(where, name, "NaN")]
    if "\ufffd" in value:
        return [Problem(where, name, "contains U+FFFD: bytes that were not valid UTF-8")]
    if len(value) > max_chars:
        return [Problem(where, name, f"over-long text ({len(value)} > {max_chars} characters)")]
    return []


def _count_problems(row: dict, name: str, where: str) -> list[Problem]:
    value = row[name]
    if isinstance(value, str):
        try:
            value = row[name] = int(value.strip())
        except ValueError:
            return [Problem(where, name, f"not a whole number: {value!r}")]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        return [Problem(where, name, f"not a whole number: {value!r}")]
    row[name] = int(value)
    return [Problem(where, name, f"negative count ({value})")] if value < 0 else []


def _messages_problems(messages: Any, where: str, name: str, last_role: str | None) -> list[Problem]:
    """Checks a conversation: a non-empty list of {role, content}, ending with `last_role` if given."""
    if not isinstance(messages, list) or not messages:
        return [Problem(where, name, "must be a non-empty list of {role, content}")]
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str) or "role" not in message:
            return [Problem(where, f"{name}[{i}]", "must be an object with 'role' and text 'content'")]
        if not message["content"].strip():
            return [Problem(where, f"{name}[{i}].content", "empty or whitespace")]
    if last_role and messages[-1]["role"] != last_role:
        return [Problem(where, name, f"the last message must be the {last_role}'s")]
    return []


def _brief_problems(row: dict, where: str) -> list[Problem]:
    """A brief's (or a prompt row's) optional platform, field and keywords: a known platform with one of its
    fields, both or neither; keywords a list of strings."""
    known = platforms()
    platform, field = (row.get(name) if _present(row.get(name)) else None for name in ("platform", "field"))
    if platform is not None and platform not in known:
        return [Problem(where, "platform", f"unknown platform '{platform}' (known: {', '.join(known)})")]
    if platform is not None and field is None:
        return [Problem(where, "field", f"missing: platform '{platform}' needs the field whose limit applies "
                                        f"({', '.join(known[platform].fields)})")]
    if field is not None and platform is None:
        return [Problem(where, "platform", f"missing: field '{field}' needs its platform ({', '.join(known)})")]
    if platform is not None and field not in known[platform].fields:
        return [Problem(where, "field", f"'{field}' is not a {platform} field "
                                        f"(known: {', '.join(known[platform].fields)})")]
    keywords = row.get("keywords")
    if keywords is not None and not (isinstance(keywords, list) and all(isinstance(k, str) for k in keywords)):
        return [Problem(where, "keywords", "must be a list of strings")]
    return []


def find_problems(records: list[Record], kind: str, max_text_chars: int = 2000) -> tuple[list[dict], list[Problem]]:
    """(good rows, problems) for a list of records of one kind."""
    if kind not in KINDS:
        raise DataError(f"unknown data kind '{kind}'; kinds: {', '.join(KINDS)}")
    good, problems = [], []
    seen_ids: dict[Any, str] = {}
    for record in records:
        if record.problem is not None:
            problems.append(Problem(record.where, *record.problem))
            continue
        found = row_problems(record.row, kind, record.where, max_text_chars)
        row_id = record.row.get("id")
        if row_id is not None and not found:
            if row_id in seen_ids:
                found.append(Problem(record.where, "id", f"duplicate id {row_id!r} (first at {seen_ids[row_id]})"))
            else:
                seen_ids[row_id] = record.where
        if found:
            problems.extend(found)
        else:
            good.append(record.row)
    return good, problems


def validate(records: list[Record], kind: str, *, on_error: str = "error", max_text_chars: int = 2000,
             source: str = "", report_dir: Path | None = None) -> list[dict]:
    """Check every record; return the good rows. `on_error`: 'error' raises listing every problem,
    'skip' drops the problem rows, prints the count by reason and saves them to
    `report_dir/data_problems.jsonl`, so nothing is dropped silently."""
    good, problems = find_problems(records, kind, max_text_chars)
    if problems:
        _handle(problems, on_error, source or kind, report_dir, len(records))
    if not good:
        raise DataError(f"{source or kind}: no usable rows")
    return good


def _handle(problems: list[Problem], on_error: str, source: str, report_dir: Path | None, total: int) -> None:
    rows_hit = len({p.where for p in problems})
    if on_error == "error":
        shown = "\n  ".join(str(p) for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise DataError(f"{source}: {rows_hit} of {total} rows have problems (set on_error: skip to drop them "
                        f"with a report):\n  {shown}{more}")
    counts = Counter(p.reason.split(" (")[0] for p in problems)
    print(f"{source}: skipped {rows_hit} of {total} rows: " + "; ".join(f"{n} x {r}" for r, n in counts.most_common()))
    if report_dir is not None:
        from rlhf_ads.storage import atomic_write_text

        lines = "".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in problems)
        path = atomic_write_text(Path(report_dir) / "data_problems.jsonl", lines)
        print(f"{source}: the skipped rows and reasons are in {path}")
