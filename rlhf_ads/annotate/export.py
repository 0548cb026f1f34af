"""Labels -> the preference file the reward stage reads (`reward.train=prefs.jsonl`).

One row per A/B label: `brief_id` (its brief in the briefs file written beside it, which `reward.train.briefs`
names) or `prompt`, `chosen`, `rejected`, `designer_id` (for `reward.rater_column`), and `margin` (for
`reward.margin_column`): over the pair's labels other than 'both unusable', (labels agreeing - labels preferring
the other ad) / labels when two designers or more labelled it, else 0 (plain Bradley-Terry). `ties` and
`unusable` count the pair's other labels; the candidates' ids and models, the reason and the time come along.
Ties and 'both unusable' labels are not training pairs: `ties_out` writes them to their own file.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from rlhf_ads.annotate.candidates import Candidate
from rlhf_ads.annotate.stats import by_pair
from rlhf_ads.annotate.store import Label, Store
from rlhf_ads.data import load_rows
from rlhf_ads.errors import DataError
from rlhf_ads.storage import atomic_write_text


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def margin(label: Label, pair_labels: list[Label]) -> float:
    """(agreeing - opposite) / counted labels of the pair ('both unusable' not counted), 0 for fewer than two."""
    counted = [other for other in pair_labels if other.choice != "unusable"]
    if len(counted) < 2:
        return 0.0
    agreeing = sum(other.winner_loser == label.winner_loser for other in counted)
    opposite = sum(other.winner_loser == label.winner_loser[::-1] for other in counted)
    return (agreeing - opposite) / len(counted)


def _context(candidate: Candidate, briefs: dict[str, tuple[dict, str]], where: str) -> dict:
    """{'brief_id': key} (recording the brief for the briefs file) or {'prompt': ...} (with platform and field)."""
    if not candidate.brief.get("product"):
        return dict(candidate.brief)
    _remember(briefs, dict(candidate.brief, id=candidate.brief_key), where)
    return {"brief_id": candidate.brief_key}


def _remember(briefs: dict[str, tuple[dict, str]], brief: dict, where: str) -> None:
    first = briefs.setdefault(brief["id"], (brief, where))
    if first[0] != brief:
        raise DataError(f"brief {brief['id']!r} from {where} differs from the one from {first[1]}; give one of them "
                        "another id")


def _mixed_rows(source: str, briefs: dict[str, tuple[dict, str]]) -> list[dict]:
    """A preference source's rows as export rows: a joined brief goes to the briefs file, `margin` defaults to 0."""
    rows = []
    for row in load_rows(source, "preferences"):
        row = {k: v for k, v in row.items() if k != "split"}
        brief = row.pop("brief", None)
        if brief is not None:
            _remember(briefs, {k: v for k, v in brief.to_dict().items() if v not in ("", [])}, source)
        rows.append(dict(row, margin=row.get("margin", 0.0), source=source))
    return rows


def export(store: Store, out: str | Path, briefs_out: str | Path | None = None, ties_out: str | Path | None = None,
           mix: tuple[str, ...] = ()) -> dict:
    """Write the preference rows (and the briefs they point at) -> counts. `mix`: preference sources (files or
    'bundled:preferences:train') whose rows join the export."""
    out = Path(out)
    briefs_out = Path(briefs_out) if briefs_out else out.with_name(f"{out.stem}.briefs.jsonl")
    candidates = store.candidates()
    labels = store.labels()
    grouped = by_pair(labels)
    briefs: dict[str, tuple[dict, str]] = {}
    rows, others = [], []
    for label in labels:
        left, right = candidates[label.left_id], candidates[label.right_id]
        common = {"designer_id": label.designer, "reason": label.reason, "labelled_at": _iso(label.created_at)}
        context = _context(left, briefs, str(store.path))
        if label.winner_loser is None:
            others.append({"id": f"{label.pair_id}/{label.designer}", **context, "label": label.choice,
                           "ad_a": left.text, "ad_b": right.text, "a_id": left.id, "b_id": right.id, **common})
            continue
        chosen, rejected = (candidates[c] for c in label.winner_loser)
        pair = grouped[label.pair_id]
        rows.append({"id": f"{label.pair_id}/{label.designer}", **context, "chosen": chosen.text,
                     "rejected": rejected.text, **common, "margin": margin(label, pair), "labels": len(pair),
                     "ties": sum(o.choice == "tie" for o in pair), "unusable": sum(o.choice == "unusable" for o in pair),
                     "chosen_id": chosen.id, "rejected_id": rejected.id, "chosen_model": chosen.model,
                     "rejected_model": rejected.model, "shown_as_a": left.id})
    for source in mix:
        rows += _mixed_rows(source, briefs)
    if not rows:
        raise DataError(f"{store.path}: no A/B labels to export yet ({len(others)} ties or both-unusable)")
    _check_ids(rows)
    atomic_write_text(out, _jsonl(rows))
    if briefs:
        atomic_write_text(briefs_out, _jsonl([brief for brief, _ in briefs.values()]))
    if ties_out:
        atomic_write_text(ties_out, _jsonl(others))
    return {"rows": len(rows), "labels": len(labels), "mixed": sum("source" in r for r in rows),
            "ties": sum(o["label"] == "tie" for o in others), "unusable": sum(o["label"] == "unusable" for o in others),
            "briefs_out": str(briefs_out) if briefs else None}


def _check_ids(rows: list[dict]) -> None:
    seen: set = set()
    for row in rows:
        if row.get("id") is not None and row["id"] in seen:
            raise DataError(f"two exported rows share the id {row['id']!r} ({row.get('source', 'the labels')}); "
                            "mix each source once")
        seen.add(row.get("id"))


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
