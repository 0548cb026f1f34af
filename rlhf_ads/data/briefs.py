"""The ad brief: what a copywriter is asked to write, and its rendering into a chat prompt."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from rlhf_ads.platforms import field_spec, platforms, width_for

SYSTEM_PROMPT = ("You write ad copy: specific, truthful, within the character limit, using the brief's keywords, "
                 "with a call to action; no capitals for emphasis, no '!!', no unverifiable claims.")


@dataclass(kw_only=True)
class Brief:
    """One creative brief: only the product is required (what rlhf_ads.data.validation checks). `platform`/`field`
    name a spec in platforms.yaml (e.g. google_rsa/headline) and go together; without them no limit applies.
    An absent field is "" (keywords: [])."""

    id: str = ""
    product: str
    brand: str = ""
    platform: str = ""
    field: str = ""
    category: str = ""
    audience: str = ""
    tone: str = ""
    landing_page: str = ""
    keywords: list[str] = dataclasses.field(default_factory=list)
    vertical: str = ""

    @property
    def max_chars(self) -> int | None:
        """The platform field's character limit; None for a brief without platform and field."""
        return field_spec(self.platform, self.field).max_chars if self.platform and self.field else None

    def to_dict(self) -> dict:
        return asdict(self)


def brief_from_row(row: dict) -> Brief:
    """A Brief from a mapping that has (at least) a product; extra columns are ignored, absent or None fields
    are empty."""
    known = Brief.__dataclass_fields__
    values = {k: v for k, v in row.items() if k in known and v is not None}
    values["id"] = str(values.get("id", ""))
    return Brief(**values)


def brief_request(brief: Brief) -> str:
    """The user turn of the prompt: the brief's given fields, with the platform's limit stated when it has one."""
    spec = platforms()[brief.platform] if brief.max_chars is not None else None
    what = f"{spec.display_name} {brief.field.replace('_', ' ')}" if spec else "ad"
    lines = [f"Write one {what}{f' for {brief.brand}' if brief.brand else ''}.", f"Product: {brief.product}"]
    lines += [f"{label}: {value}" for label, value in (("Category", brief.category), ("Audience", brief.audience),
                                                       ("Tone", brief.tone)) if value]
    lines.append(f"Keywords: {', '.join(brief.keywords) if brief.keywords else 'none'}")
    if brief.landing_page:
        lines.append(f"Landing page: {brief.landing_page}")
    if spec is not None:
        width_note = " Chinese, Japanese and Korean characters count as two." if spec.double_width_counts_twice else ""
        lines.append(f"Limit: at most {brief.max_chars} characters.{width_note}")
    lines.append("Reply with the ad text only.")
    return "\n".join(lines)


def brief_messages(brief: Brief) -> list[dict[str, str]]:
    """Chat messages (system + user) for a brief."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": brief_request(brief)}]


def render_prompt(brief: Brief, tokenizer) -> str:
    """The brief as prompt text through the tokenizer's chat template, ready for generation."""
    messages = brief_messages(brief)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{SYSTEM_PROMPT}\n\n{brief_request(brief)}\n\nAd:"


def brief_context(brief: Brief) -> str:
    """The brief in one compact line, as scorers (reward and click-through models) read it."""
    keywords = ", ".join(brief.keywords) if brief.keywords else "none"
    target = f"{brief.platform} {brief.field} (max {brief.max_chars} chars)" if brief.max_chars else "ad (no limit)"
    return (f"{target} | brand: {brief.brand or 'none'} | product: {brief.product} | keywords: {keywords} | "
            f"tone: {brief.tone or 'any'} | page: {brief.landing_page}")


SCORER_INPUT = "brief_context+fit"  # a scorer reading scorer_text with its brief; "brief_context": without it


def scorer_text(context: str, completion: str, brief: Brief | None = None) -> str:
    """What a scorer reads: the context (a brief_context line or a user's prompt), surface facts about
    the ad that subword tokenizers hide, and the ad. The facts: its length in characters (with `brief`,
    its width under the platform's counting rule as a share of the brief's limit, and whether it is
    over), and its words in capitals, which an uncased encoder cannot see."""
    ad = completion.strip()
    shouted = sum(1 for word in re.findall(r"\b[A-Za-z]{4,}\b", ad) if word.isupper())
    if brief is None or brief.max_chars is None:
        size = f"{len(ad)} chars,"
    else:
        width, limit = width_for(ad, brief.platform), brief.max_chars
        size = f"{width} chars, {round(100 * width / limit)}% of the limit{', over it' if width > limit else ''};"
    return f"{context}\nAd ({size} {shouted} words in capitals): {ad}"


def rater_context(context: str, rater: str | None) -> str:
    """A context conditioned on who judges: 'rater: <id> | <context>' (unchanged when rater is None)."""
    return context if rater is None else f"rater: {rater} | {context}"


def rater_mean_scores(score: Callable[[list[str]], list[float]], contexts: list[str], completions: list[str],
                      raters: list[str | None], briefs: list[Brief | None] | None = None) -> list[float]:
    """Scores (N,) of N ads averaged over raters: the population's taste from a rater-conditioned scorer.
    score: scorer texts -> one scalar each; raters: [None] for a scorer trained without rater_column;
    briefs: each ad's brief, for the fit to its limit (None: the scorer text without it)."""
    briefs = briefs or [None] * len(contexts)
    per_rater = [score([scorer_text(rater_context(c, r), a, b) for c, a, b in zip(contexts, completions, briefs)])
                 for r in raters]
    return [sum(column) / len(column) for column in zip(*per_rater)]


def row_context(row: dict) -> str:
    """A data row's context for scorers: its joined brief, else its prompt (conversations flattened)."""
    if row.get("brief") is not None:
        return brief_context(row["brief"])
    prompt = row.get("prompt", "")
    if isinstance(prompt, list):
        return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
    return prompt


def message_text(value) -> str:
    """A completion given as text or as TRL's conversational list -> its text."""
    if isinstance(value, list):
        return value[-1]["content"]
    return value


def render_row_prompt(row: dict, tokenizer) -> str:
    """A data row's prompt as generation-ready text: its brief, a plain prompt or a conversation,
    through the chat template (a plain prompt becomes the user turn)."""
    if row.get("brief") is not None:
        return render_prompt(row["brief"], tokenizer)
    if "messages" in row and row.get("prompt") is None:
        messages = row["messages"][:-1]
    else:
        prompt = row["prompt"]
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\n"


def row_completion(row: dict) -> str:
    """A data row's target text: `completion`, or the last message of `messages`."""
    if row.get("completion") is not None:
        return message_text(row["completion"])
    return row["messages"][-1]["content"]


def row_target(row: dict) -> tuple[str | None, str | None, int | None]:
    """(platform, field, character limit) an ad for a row is written for: its brief's, else the row's own platform
    and field columns; Nones when the row names none, and then no limit is checked."""
    source = row["brief"].to_dict() if row.get("brief") is not None else row
    platform, field = source.get("platform") or None, source.get("field") or None
    return platform, field, (field_spec(platform, field).max_chars if platform and field else None)


def within_row_limit(ad: str, row: dict) -> bool | None:
    """Whether `ad` keeps the character limit of the row's ad target (row_target), as the platform counts
    characters; None when the row names no target with a limit."""
    platform, _, limit = row_target(row)
    return None if limit is None else 0 < width_for(ad, platform) <= limit


def within_limit_shares(ads: list[str], rows: list[dict]) -> dict[str, float]:
    """One ad per row -> {"within_limit": share of the ads with a limit that keep it (within_row_limit),
    "within_limit/<platform>/<field>": the same per ad target}; empty when no row has a limit. Per target,
    because a policy can keep descriptions and overrun headlines, and the mix of targets differs by split."""
    kept_per_target: dict[str, list[bool]] = {}
    for ad, row in zip(ads, rows, strict=True):
        if (kept := within_row_limit(ad, row)) is not None:
            kept_per_target.setdefault("/".join(row_target(row)[:2]), []).append(kept)
    if not kept_per_target:
        return {}
    flags = [flag for target_flags in kept_per_target.values() for flag in target_flags]
    return {"within_limit": sum(flags) / len(flags),
            **{f"within_limit/{target}": sum(f) / len(f) for target, f in sorted(kept_per_target.items())}}


def representative_rows(rows: list[dict], count: int) -> list[dict]:
    """`count` of `rows` (all when there are no more) with the mix of ad targets (platform, field) the rows have:
    each target gets its exact share count * n_target / len(rows) rounded down, the seats left go to the largest
    remainders (ties: the target met first), and each target gives its first rows. File order is kept.

    The first rows of a file need not be a sample: the bundled validation split's first 48 briefs held no Meta
    headline (docs/ppo_outcome.md), so a validation curve on them overstated within-limit ads. Rows without a
    target form one group of their own."""
    if count >= len(rows):
        return list(rows)
    by_target: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        by_target.setdefault(row_target(row)[:2], []).append(index)
    seats = {target: divmod(count * len(indices), len(rows)) for target, indices in by_target.items()}
    left = count - sum(whole for whole, _ in seats.values())
    order = sorted(by_target, key=lambda target: (-seats[target][1], by_target[target][0]))
    chosen = [index for rank, target in enumerate(order)
              for index in by_target[target][:seats[target][0] + (rank < left)]]
    return [rows[index] for index in sorted(chosen)]


def row_id(row: dict) -> str | None:
    """A row's id: its brief's, its own `id`, else its `brief_id`."""
    if row.get("brief") is not None and row["brief"].id:
        return row["brief"].id
    value = row.get("id", row.get("brief_id"))
    return None if value is None else str(value)


COLUMN_SKIP = {"_line", "brief", "prompt", "split"}


def reward_columns(rows: list[dict]) -> dict[str, list]:
    """Dataset columns for reward functions, one value per row: the brief's fields for brief rows, else the row's
    own columns. A field a row does not have (or leaves empty) is None: "not applicable"."""
    flat = [dict(row["brief"].to_dict(), **{k: v for k, v in row.items() if k not in COLUMN_SKIP})
            if row.get("brief") is not None else {k: v for k, v in row.items() if k not in COLUMN_SKIP} for row in rows]
    names = sorted({k for f in flat for k in f})
    return {name: [None if _empty(f.get(name)) else f.get(name) for f in flat] for name in names}


def _empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value)
