"""Candidate ads for designers to compare: read (and validated) from a JSONL file, or written from checkpoints.

A candidate file has one ad a line: `text`, and the brief it answers, either the brief's own fields (`product`,
`brand`, `platform`, `field`, ... as in a briefs file; `brief_id` names it) or a plain `prompt` (with optional
`platform` and `field`). `id` (default: a hash of the brief and the text) and `model` (default 'own') are
optional. Rows with only a `brief_id` take the brief from a briefs source (`--briefs`). Candidates of the same
brief are paired for comparison.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rlhf_ads.data import Brief, brief_from_row, load_briefs, row_id
from rlhf_ads.data.formats import read_records
from rlhf_ads.data.validation import Problem, row_problems, text_problems
from rlhf_ads.errors import DataError

PROMPT_FIELDS = ("prompt", "platform", "field")
SHOWN_PROBLEMS = 50


@dataclass(frozen=True)
class Candidate:
    """One ad to compare. `brief`: the brief's fields (with its id, `brief_key`) or a plain prompt row
    ({prompt, platform?, field?}), as stored and shown."""

    id: str
    brief_key: str
    brief: dict
    model: str
    text: str


def prompt_row(brief: dict) -> dict:
    """A stored brief as the rows `load_prompts` gives: {"brief": Brief, ...} for a brief, else the prompt row."""
    return {"brief": brief_from_row(brief)} if brief.get("product") else dict(brief)


def _digest(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode("utf-8")).hexdigest()[:12]


def _brief_fields(brief: Brief) -> dict:
    """A Brief's non-empty fields (keywords included when given)."""
    return {k: v for k, v in brief.to_dict().items() if v not in ("", [], None)}


def _row_brief(row: dict, where: str, briefs: dict[str, Brief] | None, source: str | None) -> tuple[str, dict] | Problem:
    """(brief key, stored brief) of one candidate row, or the Problem that stops it."""
    if row.get("product"):
        fields = {k: v for k, v in row.items() if k in Brief.__dataclass_fields__ and k != "id"}
        key = str(row["brief_id"]) if row.get("brief_id") is not None else "b-" + _digest(json.dumps(fields, sort_keys=True))
        return key, _brief_fields(brief_from_row(dict(fields, id=key)))
    if row.get("prompt"):
        prompt = {k: row[k] for k in PROMPT_FIELDS if row.get(k)}
        key = str(row["brief_id"]) if row.get("brief_id") is not None else "p-" + _digest(json.dumps(prompt, sort_keys=True))
        return key, prompt
    if row.get("brief_id") is not None:
        if briefs is None:
            return Problem(where, "product", "missing: give the brief's fields (product, platform, field, ...) or a "
                                             "prompt, or a briefs file (--briefs) for brief_id to point into")
        brief = briefs.get(str(row["brief_id"]))
        if brief is None:
            return Problem(where, "brief_id", f"{row['brief_id']!r} is not in {source}")
        return brief.id, _brief_fields(brief)
    return Problem(where, "prompt", "missing: give a prompt or the brief's fields (product, ...)")


def _row_problems(row: dict, where: str, max_text_chars: int) -> list[Problem]:
    problems = row_problems(row, "prompts", where, max_text_chars)
    if row.get("text") is None:
        problems.append(Problem(where, "text", "missing"))
    else:
        problems += text_problems(row["text"], "text", where, max_text_chars)
    for name in ("id", "model"):
        if row.get(name) is not None and not isinstance(row[name], (str, int)):
            problems.append(Problem(where, name, f"expected text, got {type(row[name]).__name__}"))
    if "messages" in row and not row.get("prompt"):
        problems.append(Problem(where, "prompt", "missing: a candidate's prompt goes in `prompt` (its ad in `text`)"))
    return problems


def read_candidates(path: str | Path, briefs: str | None = None, max_text_chars: int = 2000) -> list[Candidate]:
    """Every candidate in a JSONL (or CSV/Parquet) file; a DataError lists each problem with its file, line and
    field. `briefs`: a briefs source that rows with only a `brief_id` point into."""
    records = read_records(path)
    by_id = {b.id: b for b in load_briefs(briefs)} if briefs else None
    problems: list[Problem] = []
    found: list[Candidate] = []
    first_seen: dict[str, str] = {}  # candidate id -> where
    brief_seen: dict[str, tuple[dict, str]] = {}  # brief key -> (brief, where)
    for record in records:
        where, row = record.where, record.row
        row_found = [Problem(where, *record.problem)] if record.problem else _row_problems(row, where, max_text_chars)
        brief = None if row_found else _row_brief(row, where, by_id, briefs)
        if isinstance(brief, Problem):
            row_found.append(brief)
        if row_found:
            problems += row_found
            continue
        key, stored = brief
        earlier = brief_seen.setdefault(key, (stored, where))
        if earlier[0] != stored:
            problems.append(Problem(where, "brief_id", f"brief {key!r} differs from the one first given at {earlier[1]}"))
            continue
        text = row["text"].strip()
        cid = str(row["id"]) if row.get("id") is not None else "c-" + _digest(key, text)
        if cid in first_seen:
            what = "duplicate id" if row.get("id") is not None else "the same brief and text as"
            problems.append(Problem(where, "id", f"{what} {cid!r} (first at {first_seen[cid]})"))
            continue
        first_seen[cid] = where
        found.append(Candidate(cid, key, stored, str(row.get("model") or "own"), text))
    if problems:
        shown = "\n  ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
        more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise DataError(f"{path}: {len({p.where for p in problems})} of {len(records)} candidates have problems:"
                        f"\n  {shown}{more}")
    if not found:
        raise DataError(f"{path}: no candidates")
    return found


def candidate_row(candidate: Candidate) -> dict:
    """A candidate as a line of the candidates file (read back by `read_candidates` as the same candidate)."""
    brief = {k: v for k, v in candidate.brief.items() if k != "id"}
    return {"id": candidate.id, "brief_id": candidate.brief_key, "model": candidate.model, "text": candidate.text,
            **brief}


def generate_candidates(recipe, models: list[str], source, per_brief: int, num_briefs: int | None,
                        temperature: float, max_new_tokens: int) -> list[Candidate]:
    """`per_brief` sampled ads for each brief of `source` (a DataSource of briefs or prompts) from each checkpoint
    in `models` (base, sft, ppo or adapter folders, as `rlhf-ads evaluate` names them), on the recipe's base model;
    empty ads are dropped, and the U+FFFD of a character cut at the token budget."""
    import torch

    from rlhf_ads.data import data_options, load_prompts, render_row_prompt
    from rlhf_ads.evaluation.evaluate import generate_ads, load_checkpoints, model_folders

    if temperature <= 0 and per_brief > 1:
        raise DataError(f"--per-brief {per_brief} needs sampling: greedy decoding (--temperature 0) writes one ad "
                        "per brief and checkpoint")
    folders = model_folders(dataclasses.replace(recipe, evaluate=dataclasses.replace(recipe.evaluate, models=models)))
    rows = load_prompts(source.path, **data_options(source))[:num_briefs]
    model, tokenizer = load_checkpoints(recipe, folders)
    briefs = [_generated_brief(row, i) for i, row in enumerate(rows)]
    prompts = [render_row_prompt(row, tokenizer) for row in rows]
    repeated = [i for i in range(len(rows)) for _ in range(per_brief)]
    decoding = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=recipe.ppo.top_p,
                    batch_size=recipe.evaluate.batch_size)
    torch.manual_seed(recipe.seed)
    out = []
    for name, folder in folders.items():
        ads, _ = generate_ads(model, tokenizer, [prompts[i] for i in repeated], None if folder is None else name, None,
                              decoding)
        for j, (i, ad) in enumerate(zip(repeated, ads)):
            key, brief = briefs[i]
            ad = ad.replace("\ufffd", "").strip()  # a character cut at the token budget decodes as U+FFFD
            if ad:
                out.append(Candidate(f"{key}/{name}/{j % per_brief}", key, brief, name, ad))
    return out


def _generated_brief(row: dict, index: int) -> tuple[str, dict]:
    """(brief key, stored brief) of a row `load_prompts` gave."""
    key = row_id(row) or f"brief-{index + 1}"
    if row.get("brief") is not None:
        return key, _brief_fields(dataclasses.replace(row["brief"], id=key))
    prompt = row["prompt"] if row.get("prompt") is not None else row["messages"][:-1]
    return key, {"prompt": prompt, **{k: row[k] for k in PROMPT_FIELDS[1:] if row.get(k)}}
