"""Which of a brief's keywords or terms an ad contains: words matched case-blind, plurals folded."""

from __future__ import annotations

import re


def ad_words(text: str) -> list[str]:
    """Lower-cased words, figures, prices and percentages, in order."""
    return re.findall(r"[a-z0-9$%']+", text.lower())


def term_pattern(terms) -> re.Pattern:
    """Any of `terms` (an iterable of phrases) as a whole word or phrase, case-blind: not inside a longer word."""
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t.lower()) for t in terms) + r")(?!\w)", re.IGNORECASE)


def fold_plural(word: str) -> str:
    """Crude plural folding so 'shoe' matches 'shoes'."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def keywords_present(text: str, keywords: list[str]) -> float:
    """Share of `keywords` (non-empty) whose words all appear in `text`."""
    present = {fold_plural(w) for w in ad_words(text)}
    hits = sum(1 for keyword in keywords if all(fold_plural(w) in present for w in ad_words(keyword)))
    return hits / len(keywords)
