"""The gold utility: the latent quality of an ad for a brief, behind the bundled designer preferences.

It is the judge for evaluation on the bundled data and never a training reward in
the shipped recipes. `ad_features(brief, text)` returns six features in [0, 1]:

- specificity   concrete content: digits, words from the landing page, the brand, the product
- keyword_use   share of the brief's keywords (up to two) whose words all appear
- call_to_action  an imperative call to action is present
- length_fit    1 inside 55-100% of the platform limit, falling linearly when shorter, 0 when over
- tone_match    the brief's tone shows through its marker words, with no marker of a clashing tone
- policy_clean  1 minus 0.35 per editorial problem (caps words, repeated punctuation, "click here",
                unsupported superlatives, pressure phrases, emoji, symbols as letters), floored at 0

`gold_utility` is the population-average taste: the weighted sum with `POPULATION_WEIGHTS`,
times a fluency factor (repeated words and text cut mid-word are penalized). Each simulated
designer (see scripts/make_dataset.py) weighs the same features with their own weights.
"""

from __future__ import annotations

import re
import unicodedata

from rlhf_ads.data.briefs import Brief
from rlhf_ads.platforms import width_for

FEATURES = ("specificity", "keyword_use", "call_to_action", "length_fit", "tone_match", "policy_clean")
POPULATION_WEIGHTS = {"specificity": 0.2, "keyword_use": 0.2, "call_to_action": 0.15, "length_fit": 0.2,
                      "tone_match": 0.1, "policy_clean": 0.15}

CTA_VERBS = ("shop", "buy", "order", "book", "reserve", "start", "get", "try", "join", "sign up", "learn",
             "discover", "explore", "save", "call", "request", "schedule", "apply", "download", "compare",
             "claim", "see", "find", "plan", "subscribe", "enroll", "switch", "visit", "browse", "stream",
             "watch", "grab", "open", "upgrade", "protect", "hire", "quote", "register")
_CTA = re.compile(r"(^|[.!:;,|\-–]\s*|\b(?:today|now)\s*)(" + "|".join(CTA_VERBS) + r")\b", re.IGNORECASE)
_CTA_TAIL = re.compile(r"\b(" + "|".join(CTA_VERBS) + r")\b[^.!?]{0,30}(now|today|online|free|here)?[.!]?\s*$",
                       re.IGNORECASE)

TONE_MARKERS = {
    "friendly": ("easy", "hello", "your", "you'll", "happy", "simple", "help"),
    "premium": ("crafted", "refined", "signature", "elevated", "exclusive", "finest", "tailored"),
    "playful": ("fun", "yay", "treat", "love", "oh", "ready", "hey"),
    "authoritative": ("proven", "trusted", "certified", "expert", "backed", "rated", "standard"),
    "urgent-but-honest": ("today", "this week", "ends", "limited", "now", "before"),
    "warm": ("care", "home", "family", "together", "comfort", "welcome", "kind"),
    "technical": ("spec", "api", "integrat", "ms", "gb", "mm", "uptime", "sso", "sdk", "per"),
    "minimalist": (),  # shown by brevity and no exclamation marks, see _tone_match
}
CLASHING_TONES = {"premium": "playful", "playful": "authoritative", "authoritative": "playful",
                  "minimalist": "playful", "technical": "playful", "warm": "technical", "friendly": "technical",
                  "urgent-but-honest": "minimalist"}

SUPERLATIVES = re.compile(r"\b(best|#1|no\.? ?1|number one|greatest|top-rated|unbeatable|world'?s leading)\b", re.I)
PRESSURE = re.compile(r"\b(last chance|don'?t miss( out)?|act now|hurry|only today|won'?t last|before it'?s gone)\b",
                      re.I)
CLICK_HERE = re.compile(r"\bclick here\b", re.I)
REPEATED_PUNCT = re.compile(r"([!?.,])\1+|[!?]{2,}")
SYMBOL_AS_LETTER = re.compile(r"\b\w*[a-z][@$0][a-z]\w*\b", re.I)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def is_emoji(ch: str) -> bool:
    """True for pictographs and symbols that ad platforms treat as emoji."""
    return unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF


def policy_problems(text: str) -> list[str]:
    """The editorial problems the gold judge sees (a small, fixed subset of the linter's rules)."""
    problems = []
    caps = [w for w in re.findall(r"\b[A-Za-z]{4,}\b", text) if w.isupper()]
    if caps:
        problems.append("capitals")
    if REPEATED_PUNCT.search(text):
        problems.append("repeated_punctuation")
    if CLICK_HERE.search(text):
        problems.append("click_here")
    if SUPERLATIVES.search(text):
        problems.append("superlative")
    if PRESSURE.search(text):
        problems.append("pressure")
    if any(is_emoji(ch) for ch in text):
        problems.append("emoji")
    if SYMBOL_AS_LETTER.search(text):
        problems.append("symbol_as_letter")
    return problems


def _specificity(brief: Brief, text: str) -> float:
    lower = text.lower()
    score = 0.35 if re.search(r"\d", text) else 0.0
    page_words = {w for w in _words(brief.landing_page) if len(w) > 3} - set(_words(brief.brand))
    score += min(0.4, 0.08 * len(page_words & set(_words(lower))))
    if brief.brand and brief.brand.lower() in lower:
        score += 0.15
    if _content_overlap(brief.product, lower) >= 0.5:
        score += 0.1
    return min(1.0, score)


def _content_overlap(phrase: str, lower_text: str) -> float:
    words = [w for w in _words(phrase) if len(w) > 2]
    if not words:
        return 0.0
    return sum(1 for w in words if w in lower_text) / len(words)


def _keyword_use(brief: Brief, text: str) -> float:
    if not brief.keywords:
        return 1.0
    lower = text.lower()
    hits = sum(1 for kw in brief.keywords if _content_overlap(kw, lower) == 1.0)
    return min(1.0, hits / min(2, len(brief.keywords)))


def _call_to_action(text: str) -> float:
    return 1.0 if (_CTA.search(text) or _CTA_TAIL.search(text)) else 0.0


def _length_fit(brief: Brief, text: str) -> float:
    width, limit = width_for(text, brief.platform), brief.max_chars
    if width > limit or width == 0:
        return 0.0
    share = width / limit
    return 1.0 if share >= 0.55 else share / 0.55


def _tone_match(brief: Brief, text: str) -> float:
    lower = text.lower()
    tone = brief.tone
    if tone == "minimalist":
        return 1.0 if "!" not in text and len(_words(text)) <= 14 else 0.3
    markers = TONE_MARKERS.get(tone, ())
    hit = any(m in lower for m in markers)
    clash = CLASHING_TONES.get(tone)
    clashing = clash is not None and any(m in lower for m in TONE_MARKERS[clash])
    return (1.0 if hit else 0.4) - (0.4 if clashing else 0.0)


_SHORT_WORDS = {"a", "an", "as", "at", "be", "by", "do", "go", "in", "is", "it", "me", "my", "no", "of", "on",
                "or", "so", "to", "up", "us", "we", "all", "and", "app", "day", "for", "fun", "get", "new", "now",
                "off", "one", "our", "per", "pet", "the", "you", "yay", "hey", "her", "his", "car", "job", "try"}


def fluency(text: str) -> float:
    """1 for clean text; lower for repeated words, low word variety, or text cut off mid-word."""
    words = _words(text)
    if not words:
        return 0.0
    repeats = sum(1 for a, b in zip(words, words[1:]) if a == b)
    distinct = len(set(words)) / len(words)
    factor = 1.0 - 0.25 * repeats - (0.5 if len(words) >= 6 and distinct < 0.6 else 0.0)
    stripped = text.rstrip()
    cut_off = stripped.endswith(("-", "…", "...")) or (
        stripped[-1].isalpha() and len(words[-1]) <= 3 and words[-1] not in _SHORT_WORDS)
    return max(0.0, factor - (0.3 if cut_off else 0.0))


def ad_features(brief: Brief, text: str) -> dict[str, float]:
    """The six gold features of `text` for `brief`, each in [0, 1]."""
    return {
        "specificity": _specificity(brief, text),
        "keyword_use": _keyword_use(brief, text),
        "call_to_action": _call_to_action(text),
        "length_fit": _length_fit(brief, text),
        "tone_match": max(0.0, _tone_match(brief, text)),
        "policy_clean": max(0.0, 1.0 - 0.35 * len(policy_problems(text))),
    }


def weighted_utility(features: dict[str, float], weights: dict[str, float], text: str) -> float:
    """sum_k w_k f_k, times fluency(text)."""
    return sum(weights[k] * features[k] for k in FEATURES) * fluency(text)


def gold_utility(brief: Brief, text: str) -> float:
    """The population utility of an ad in [0, 1]: the evaluation judge on the bundled data."""
    return weighted_utility(ad_features(brief, text), POPULATION_WEIGHTS, text)


def row_gold(row: dict, text: str) -> float | None:
    """The gold utility of `text` written for a prompt row, or None where it has none to give: the row must carry
    a brief (under "brief") with a platform limit, which the length fit needs."""
    brief = row.get("brief")
    return None if brief is None or brief.max_chars is None else gold_utility(brief, text)


def mean_gold(rows: list[dict], texts: list[str]) -> float | None:
    """The gold utility's mean over the texts written for `rows`, or None unless every row is a brief with a
    platform limit (the gold utility's length fit needs it)."""
    golds = [row_gold(row, text) for row, text in zip(rows, texts)]
    return None if None in golds else sum(golds) / len(golds)
