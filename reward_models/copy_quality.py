"""Copy-quality rewards: keyword coverage, call to action, brief facts, brand voice, repetition, and
diversity within the batch and against the recent rollouts."""

from __future__ import annotations

import re
from collections import Counter

from reward_models._columns import per_sample, per_sample_lists
from rlhf_ads.rewards import ad_words, fold_plural, keywords_present, term_pattern

CTA_VERBS = ("shop", "buy", "order", "book", "reserve", "start", "get", "try", "join", "sign up", "learn more",
             "discover", "explore", "save", "call", "request", "schedule", "apply", "download", "compare", "claim",
             "see", "find", "plan", "subscribe", "enroll", "switch", "visit", "browse", "stream", "watch", "open",
             "upgrade", "register", "contact", "check")


def keyword_coverage(completions: list[str], prompts: list[str], keywords=None, **columns) -> list[float | None]:
    """Share of the brief's keywords whose words all appear in the ad (plurals folded); None without keywords."""
    return [keywords_present(text, kws) if kws else None
            for text, kws in zip(completions, per_sample_lists(keywords, len(completions)))]


def call_to_action(completions: list[str], prompts: list[str], verbs: list[str] | None = None,
                   **columns) -> list[float]:
    """1 when the ad contains an imperative call to action (a CTA verb opening a sentence or clause), else 0."""
    verbs = verbs or list(CTA_VERBS)
    pattern = re.compile(r"(?:^|[.!?:;|–—-]\s*|,\s*)(?:" + "|".join(map(re.escape, verbs)) + r")\b", re.I)
    return [1.0 if pattern.search(text.strip()) else 0.0 for text in completions]


_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_STOPWORDS = {"with", "from", "your", "that", "this", "into", "over", "about", "each", "after", "their", "than",
              "them", "they", "when", "what", "will", "have", "more", "most", "also", "only", "free"}


def _fact_words(text: str) -> set[str]:
    return {fold_plural(w) for w in re.findall(r"[a-z]{4,}", text.lower())} - _STOPWORDS


def brief_facts(completions: list[str], prompts: list[str], landing_page=None, numbers: float = 0.4,
                words: float = 0.1, unsupported: float = 0.5, **columns) -> list[float | None]:
    """Specific and truthful, in [-1, 1]: +`numbers` per figure the ad takes from the brief's landing page
    (price, size, warranty...), +`words` per other landing-page word it uses (together capped at 1), and
    -`unsupported` per figure the landing page does not state. None without a landing page."""
    scores = []
    for text, page in zip(completions, per_sample(landing_page, len(completions))):
        if not page:
            scores.append(None)
            continue
        page_numbers, ad_numbers = set(_NUMBER.findall(page)), set(_NUMBER.findall(text))
        supported = len(ad_numbers & page_numbers)
        used_words = len(_fact_words(text) & _fact_words(page))
        gain = min(1.0, numbers * supported + words * used_words)
        scores.append(max(-1.0, gain - unsupported * len(ad_numbers - page_numbers)))
    return scores


class BrandVoice:
    """Brand-voice lexicon: +`bonus` per preferred term (capped at 1), -`penalty` per avoided term.

    brand_voice:
      kwargs: {preferred: [crafted, care], avoided: [cheap, deal]}
    """

    def __init__(self, preferred: list[str] = (), avoided: list[str] = (), bonus: float = 0.5, penalty: float = 1.0):
        if not preferred and not avoided:
            raise ValueError("brand_voice needs a lexicon: give `preferred` and/or `avoided` terms")
        self.preferred = [p.lower() for p in preferred]
        self.avoided = [a.lower() for a in avoided]
        self.bonus, self.penalty = bonus, penalty
        self._preferred = [term_pattern([t]) for t in self.preferred]
        self._avoided = [term_pattern([t]) for t in self.avoided]

    @staticmethod
    def _count(patterns: list[re.Pattern], lower: str) -> int:
        return sum(1 for p in patterns if p.search(lower))

    def __call__(self, completions: list[str], prompts: list[str], **columns) -> list[float]:
        scores = []
        for text in completions:
            lower = text.lower()
            good = min(1.0, self.bonus * self._count(self._preferred, lower))
            scores.append(good - self.penalty * self._count(self._avoided, lower))
        return scores


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def repetition(completions: list[str], prompts: list[str], n: int = 3, **columns) -> list[float]:
    """Degeneration penalty in [-1, 0]: minus the share of repeated n-grams and immediately repeated words."""
    scores = []
    for text in completions:
        words = ad_words(text)
        grams = _ngrams(words, n)
        repeated_grams = (len(grams) - len(set(grams))) / len(grams) if grams else 0.0
        repeated_words = sum(1 for a, b in zip(words, words[1:]) if a == b) / max(1, len(words) - 1)
        scores.append(-min(1.0, repeated_grams + repeated_words))
    return scores


def _gram_set(text: str, n: int) -> frozenset:
    """The ad's distinct word n-grams (its whole word sequence when it is shorter than n words)."""
    words = ad_words(text)
    return frozenset(_ngrams(words, n)) or frozenset({tuple(words)})


def _closest_overlap(mine: frozenset, others) -> float:
    """The highest n-gram Jaccard similarity between `mine` and any of `others` (0 with none)."""
    return max((len(mine & other) / max(1, len(mine | other)) for other in others), default=0.0)


def batch_diversity(completions: list[str], prompts: list[str], n: int = 2, **columns) -> list[float | None]:
    """Within-batch diversity bonus in [0, 1]: 1 minus the highest n-gram Jaccard similarity to any
    other completion of the batch; None for a batch of one."""
    if len(completions) < 2:
        return [None] * len(completions)
    sets = [_gram_set(t, n) for t in completions]
    return [1.0 - _closest_overlap(mine, sets[:i] + sets[i + 1:]) for i, mine in enumerate(sets)]


class RecentDiversity:
    """Diversity against the policy's recent ads, in [0, 1], compared with the other ads of the batch and the
    last `window` ads PPO sampled (None when there is nothing to compare). `score`:

    - `closest`: 1 minus the ad's highest n-gram Jaccard similarity to any one of them;
    - `shared`: 1 minus the mean over the ad's distinct n-grams of how widely each is shared, min(1, df / (shared_at
      x N)), df being how many of the N compared ads hold it: an n-gram in `shared_at` of them (5%: a frame's
      words, `learn more`, `looking for`) costs in full, one in a single other ad 1 / (shared_at x N). What distinct-2
      counts is every shared bigram, and a frame with varying facts keeps each ad's closest match low, so `closest`
      pays for the frame where `shared` does not. With `skip_prompt_words`, n-grams made only of words of the ad's
      own prompt (its keywords, product, landing-page facts: what the brief asks for) are left out of the mean, so
      that ads for one product may share what their briefs share.

    A batch of 16 rarely holds two briefs for the same product, so `batch_diversity` sees a template only
    through its fixed words; across a few hundred rollouts the template's ads for the same product are near
    copies, and this term sees them. PPO calls `observe` with every rollout batch (all ranks' ads, in rank
    order) and keeps `state_dict()` in its checkpoint, so resuming scores as the uninterrupted run would;
    scoring alone (validation, evaluation, best-of-n, GRPO/RLOO) never changes the window.

        recent_diversity:
          kwargs: {window: 256, n: 2, score: shared, shared_at: 0.05, skip_prompt_words: true}
    """

    def __init__(self, window: int = 256, n: int = 2, score: str = "closest", shared_at: float = 0.05,
                 skip_prompt_words: bool = False):
        if window < 1 or n < 1:
            raise ValueError(f"recent_diversity needs window >= 1 and n >= 1, got window={window}, n={n}")
        if score not in ("closest", "shared"):
            raise ValueError(f"recent_diversity's score is 'closest' or 'shared', got {score!r}")
        if not 0 < shared_at <= 1:
            raise ValueError(f"recent_diversity needs 0 < shared_at <= 1, got {shared_at}")
        if skip_prompt_words and score != "shared":
            raise ValueError("recent_diversity's skip_prompt_words needs score: shared")
        self.window, self.n, self.score, self.shared_at = window, n, score, shared_at
        self.skip_prompt_words = skip_prompt_words
        self.recent: list[str] = []
        self._recent_sets: list[frozenset] = []

    def __call__(self, completions: list[str], prompts: list[str], **columns) -> list[float | None]:
        sets = [_gram_set(t, self.n) for t in completions]
        if self.score == "shared":
            return self._unshared(sets, prompts)
        scores = []
        for i, mine in enumerate(sets):
            others = self._recent_sets + sets[:i] + sets[i + 1:]
            scores.append(1.0 - _closest_overlap(mine, others) if others else None)
        return scores

    def _unshared(self, sets: list[frozenset], prompts: list[str]) -> list[float | None]:
        """The `shared` score of each ad's n-gram set against the window and the batch's other ads."""
        others = len(self._recent_sets) + len(sets) - 1
        if others == 0:
            return [None] * len(sets)
        counts = Counter(gram for grams in self._recent_sets + sets for gram in grams)
        full = self.shared_at * others
        scores = []
        for mine, prompt in zip(sets, prompts):
            if self.skip_prompt_words:
                asked = set(ad_words(prompt))
                mine = [gram for gram in mine if not asked.issuperset(gram)]
            scores.append(1.0 - sum(min(1.0, (counts[g] - 1) / full) for g in mine) / len(mine) if mine else 1.0)
        return scores

    def observe(self, completions: list[str]) -> None:
        """Remember a rollout batch: the window keeps the last `window` ads, oldest first."""
        self.recent = (self.recent + list(completions))[-self.window:]
        self._recent_sets = (self._recent_sets + [_gram_set(t, self.n) for t in completions])[-self.window:]

    def state_dict(self) -> dict:
        return {"recent": list(self.recent)}

    def load_state_dict(self, state: dict) -> None:
        self.recent, self._recent_sets = [], []
        self.observe(state["recent"])
