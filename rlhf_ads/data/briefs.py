"""The ad brief: what a copywriter is asked to write, and its rendering into a chat prompt."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rlhf_ads.platforms import field_spec, platforms

SYSTEM_PROMPT = (
    "You are a senior advertising copywriter. You write specific, truthful ad copy that fits the "
    "platform's character limit, uses the brief's keywords naturally, and ends with a clear call to action. "
    "No all-caps words, no repeated punctuation, no unverifiable claims such as 'best' or '#1'.")


@dataclass
class Brief:
    """One creative brief. `platform`/`field` name a spec in platforms.yaml (e.g. google_rsa/headline)."""

    id: str
    product: str
    brand: str
    platform: str
    field: str
    category: str = ""
    audience: str = ""
    tone: str = ""
    landing_page: str = ""
    keywords: list[str] = field(default_factory=list)
    vertical: str = ""

    @property
    def max_chars(self) -> int:
        return field_spec(self.platform, self.field).max_chars

    def to_dict(self) -> dict:
        return asdict(self)


def brief_from_row(row: dict) -> Brief:
    """A Brief from a mapping that has (at least) the brief columns; extra columns are ignored."""
    known = set(Brief.__dataclass_fields__)
    return Brief(**{k: v for k, v in row.items() if k in known})


def brief_request(brief: Brief) -> str:
    """The user turn of the prompt: the brief, with the platform's limit stated."""
    spec = platforms()[brief.platform]
    limit = brief.max_chars
    width_note = " Chinese, Japanese and Korean characters count as two." if spec.double_width_counts_twice else ""
    lines = [
        f"Write one {spec.display_name} {brief.field.replace('_', ' ')} for {brief.brand}.",
        f"Product: {brief.product}",
        f"Category: {brief.category}",
        f"Audience: {brief.audience}",
        f"Tone: {brief.tone}",
        f"Keywords: {', '.join(brief.keywords) if brief.keywords else 'none'}",
        f"Landing page: {brief.landing_page}",
        f"Limit: at most {limit} characters.{width_note}",
        "Reply with the ad text only.",
    ]
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
