"""Editorial-policy rules for ad text, as data plus checks: `lint(text, context)` lists every rule an ad
breaks. `rlhf-ads lint`, evaluation and the shipped `ad_policy` reward all read these.

Each rule cites the policy page that states it; the exclamation rule's page is AdWords' editorial standards,
older than Google's current policy pages, and the citation says so.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from rlhf_ads.lint.keywords import term_pattern
from rlhf_ads.platforms import PlatformSpec, field_spec, platform_spec, width_for

GOOGLE_CAPS = "support.google.com/adspolicy/answer/14848295"
GOOGLE_PUNCT = "support.google.com/adspolicy/answer/14847994"
GOOGLE_STYLE = "support.google.com/adspolicy/answer/14848297"
GOOGLE_CLAIMS = "support.google.com/adspolicy/answer/15936857"
GOOGLE_LEGACY = "support.google.com/adwordspolicy/answer/176095 (AdWords' editorial standards, legacy)"
MICROSOFT = "about.ads.microsoft.com/en-ca/policies/general-ad-requirements"
AMAZON = "advertising.amazon.com/resources/ad-policy/brand-profile"

SUPERLATIVES = re.compile(r"(?<![\w#])(best|#\s?1|no\.?\s?1|number one|greatest|top[- ]rated|unbeatable|cheapest|"
                          r"world'?s (?:leading|best|first)|top-selling|best-selling|lowest price)(?!\w)", re.I)
PRESSURE = re.compile(r"\b(last chance|don'?t miss(?: out)?|act now|hurry|only today|won'?t last|before it'?s gone|"
                      r"offer won'?t last|limited time only|now or never)\b", re.I)
SECRETS = re.compile(r"\b(secrets?|they don'?t want you to know|one weird trick|miracle)\b", re.I)
CLICK_HERE = re.compile(r"\bclick (here|this|now)\b", re.I)
REPEATED_PUNCT = re.compile(r"([!?.,;:])\1+|[!?][!?]+")
SYMBOL_IN_WORD = re.compile(r"\b[a-z]+[@$0]+[a-z]+\b|\b[a-z]+\$(?=\W|$)", re.I)
DECORATION = re.compile(r"\*+\w[^*]*\*+|[★☆✓✔➤►•]|~{1,}\w+~{1,}")
SPACED_LETTERS = re.compile(r"\b(?:[A-Za-z][.\s]){3,}[A-Za-z]\b")
LIST_MARKER = re.compile(r"^\s*(?:[-•*]|\d+[.)])\s+\S.*$", re.M)
DEFAULT_ACRONYMS = frozenset({"SPF", "CRM", "SaaS", "API", "SSO", "SOC", "HIPAA", "GDPR", "NASA", "USA", "UK", "EU",
                              "FAQ", "HVAC", "GPS", "SUV", "LED", "IELTS", "TOEFL", "SCIM", "PDF", "CSV", "SLA", "APR",
                              "FDIC", "ISO", "USB", "HDR", "ASAP", "BOGO"})


@dataclass(frozen=True)
class Violation:
    """One rule broken by one ad."""

    rule: str
    detail: str
    source: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail} [{self.source}]"


@dataclass(frozen=True)
class PolicyContext:
    """What the rules need beyond the text: the platform and the advertiser's settings."""

    platform: PlatformSpec | None = None
    field: str | None = None
    prohibited_terms: tuple[str, ...] = ()
    supported_claims: tuple[str, ...] = ()  # superlatives the advertiser can verify, e.g. ("#1",)
    allowed_caps: frozenset[str] = DEFAULT_ACRONYMS


def _quoted(words: list[str]) -> str:
    return ", ".join(f"'{w}'" for w in dict.fromkeys(words))


def _capitals(text: str, ctx: PolicyContext) -> list[str]:
    """One finding per kind of misuse, listing its words: capitals, alternating case, letters spelled out."""
    words = [w for w in re.findall(r"[A-Za-z]{4,}", text) if w not in ctx.allowed_caps]
    upper = [w for w in words if w.isupper()]
    alternating = [w for w in words if not w.isupper()
                   and sum(1 for a, b in zip(w, w[1:]) if a.islower() and b.isupper()) >= 2]
    spelled = [m.group(0) for m in SPACED_LETTERS.finditer(text)
               if re.sub(r"[.\s]", "", m.group(0)) not in ctx.allowed_caps and len(re.sub(r"[.\s]", "", m.group(0))) > 3]
    return [f"{_quoted(found)} {label}" for found, label in ((upper, "in capitals"), (alternating, "in alternating case"),
                                                            (spelled, "spelled out letter by letter")) if found]


def _exclamations(text: str, ctx: PolicyContext) -> list[str]:
    if ctx.platform is None:
        return []
    count = text.count("!")
    if count and ctx.field == "headline" and not ctx.platform.exclamation_in_headline:
        return [f"'!' in a {ctx.platform.name} headline"]
    if count > ctx.platform.max_exclamations_per_ad:
        return [f"{count} exclamation marks (at most {ctx.platform.max_exclamations_per_ad})"]
    return []


def _emoji(text: str, ctx: PolicyContext) -> list[str]:
    if ctx.platform is not None and ctx.platform.emoji_allowed:
        return []
    return [f"emoji {ch!r}" for ch in text if unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF]


def _superlatives(text: str, ctx: PolicyContext) -> list[str]:
    allowed = {c.lower() for c in ctx.supported_claims}
    return [f"'{m.group(0)}' without third-party support" for m in SUPERLATIVES.finditer(text)
            if m.group(0).lower() not in allowed]


def _repetition(text: str, ctx: PolicyContext) -> list[str]:
    words = re.findall(r"[a-z']+", text.lower())
    repeated = [a for a, b in zip(words, words[1:]) if a == b and len(a) > 2]
    return [f"{_quoted(repeated)} repeated"] if repeated else []


def _prohibited(text: str, ctx: PolicyContext) -> list[str]:
    return [f"prohibited term '{term}'" for term in ctx.prohibited_terms if term_pattern([term]).search(text.lower())]


def _over_limit(text: str, ctx: PolicyContext) -> list[str]:
    if ctx.platform is None or ctx.field is None:
        return []
    limit = ctx.platform.fields[ctx.field].max_chars
    width = width_for(text, ctx.platform.name)
    verb = "rejected" if ctx.platform.hard_limits else "truncated"
    return [f"{width} characters, limit {limit} ({verb} by {ctx.platform.name})"] if width > limit else []


def _matches(pattern: re.Pattern, label: str) -> Callable[[str, PolicyContext], list[str]]:
    return lambda text, ctx: [f"{label} '{m.group(0).strip()}'" for m in pattern.finditer(text)]


@dataclass(frozen=True)
class Rule:
    id: str
    check: Callable[[str, PolicyContext], list[str]]
    source: str


RULES = (
    Rule("over_limit", _over_limit, "rlhf_ads/platforms.yaml"),
    Rule("excessive_capitals", _capitals, GOOGLE_CAPS),
    Rule("repeated_punctuation", _matches(REPEATED_PUNCT, "repeated punctuation"), GOOGLE_PUNCT),
    Rule("exclamation", _exclamations, GOOGLE_LEGACY),
    Rule("symbols_as_letters", _matches(SYMBOL_IN_WORD, "symbol used as a letter in"), GOOGLE_PUNCT + ", " + MICROSOFT),
    Rule("decorative_symbols", _matches(DECORATION, "decorative symbols"), GOOGLE_PUNCT),
    Rule("emoji", _emoji, GOOGLE_PUNCT),
    Rule("unsupported_superlative", _superlatives, GOOGLE_CLAIMS + ", " + AMAZON),
    Rule("click_here", _matches(CLICK_HERE, "generic call to action"), GOOGLE_STYLE + ", " + AMAZON),
    Rule("pressure_phrase", _matches(PRESSURE, "pressure phrase"), MICROSOFT + ", " + AMAZON),
    Rule("secrets_language", _matches(SECRETS, "'secrets' language"), MICROSOFT),
    Rule("repetition", _repetition, MICROSOFT),
    Rule("list_formatting", _matches(LIST_MARKER, "bullet or numbered list"), GOOGLE_STYLE),
    Rule("prohibited_term", _prohibited, "advertiser's prohibited-terms list"),
)


def lint(text: str, ctx: PolicyContext = PolicyContext()) -> list[Violation]:
    """Every rule the ad text breaks, in rule order."""
    return [Violation(rule.id, detail, rule.source) for rule in RULES for detail in rule.check(text, ctx)]


def context_for(platform: str | None, field: str | None = None, **settings) -> PolicyContext:
    """A PolicyContext for a platform name (and field), with advertiser settings."""
    spec = platform_spec(platform) if platform else None
    if spec is not None and field is not None:
        field_spec(platform, field)  # an unknown field is a clear error here, not a KeyError later
    settings = {k: tuple(v) if k != "allowed_caps" else frozenset(v) for k, v in settings.items() if v is not None}
    return PolicyContext(platform=spec, field=field, **settings)
