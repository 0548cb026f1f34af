"""Tone of voice per brief: does the ad sound like the tone its brief asks for?

Each tone's marker words come from a lexicon the recipe gives, or are learned from ad copy the team already
approved (an SFT data set whose rows carry briefs with a tone): the words that set one tone's ads apart from
the other tones' ads.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict

from reward_models._columns import per_sample
from rlhf_ads.rewards import term_pattern

logger = logging.getLogger(__name__)
_WORD = re.compile(r"[a-z][a-z0-9']+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def learn_tone_lexicon(examples: list[tuple[str, str, str]], top: int = 5, min_count: int = 5,
                       min_log_odds: float = 2.5) -> dict[str, list[str]]:
    """Each tone's marker words, learned from approved ads.

    examples: (tone, ad text, the brief's own names: brand and product, whose words are never markers).
    A word marks a tone when it appears in at least `min_count` of that tone's ads and its smoothed log-odds
    log[(c_t + 1) / (n_t + 2)] - log[(c_o + 1) / (n_o + 2)] (c: ads with the word, n: ads, t: the tone,
    o: all other tones) is at least `min_log_odds`. At most `top` words per tone, the strongest first; a tone
    with no such word (one shown by brevity, say) is left out.
    """
    ads_per_tone: Counter = Counter()
    ads_with_word: dict[str, Counter] = defaultdict(Counter)
    for tone, text, names in examples:
        if not tone:
            continue
        ads_per_tone[tone] += 1
        ads_with_word[tone].update(_words(text) - _words(names))
    all_ads = sum(ads_per_tone.values())
    all_with_word = sum(ads_with_word.values(), Counter())
    lexicon = {}
    for tone, counts in ads_with_word.items():
        n_tone, n_other = ads_per_tone[tone], all_ads - ads_per_tone[tone]
        scored = sorted(((math.log((c + 1) / (n_tone + 2)) - math.log((all_with_word[w] - c + 1) / (n_other + 2)), w)
                         for w, c in counts.items() if c >= min_count), key=lambda sw: (-sw[0], sw[1]))
        markers = [w for score, w in scored if score >= min_log_odds][:top]
        if markers:
            lexicon[tone] = markers
    return lexicon


def lexicon_from_data(source: str, **options) -> dict[str, list[str]]:
    """`learn_tone_lexicon` over an SFT data source whose rows have briefs (e.g. 'bundled:sft:train')."""
    from rlhf_ads.data import load_rows, row_completion

    rows = [row for row in load_rows(source, "sft") if row.get("brief") is not None]
    return learn_tone_lexicon([(row["brief"].tone, row_completion(row), f"{row['brief'].brand} {row['brief'].product}")
                               for row in rows], **options)


class ToneVoice:
    """The brief's tone in the ad's words, in [-clash, 1]: 1 when the ad uses a marker of its brief's tone, else 0,
    minus `clash` when it uses another tone's marker and none of its own. None for a brief without a tone, or whose
    tone has no markers.

    Markers: `lexicon` ({tone: [words or phrases]}), or learned from `learn_from`, an SFT data source whose rows
    have briefs (see `learn_tone_lexicon`; `top`, `min_count` and `min_log_odds` go to it).

        tone_voice:
          kwargs: {learn_from: 'bundled:sft:train'}
    """

    def __init__(self, lexicon: dict[str, list[str]] | None = None, learn_from: str | None = None,
                 clash: float = 0.5, **learn_options):
        if (lexicon is None) == (learn_from is None):
            raise ValueError("tone_voice needs exactly one of `lexicon` ({tone: [markers]}) and `learn_from` "
                             "(an SFT data source with briefs, e.g. 'bundled:sft:train')")
        if lexicon is not None and learn_options:
            raise ValueError(f"tone_voice: {', '.join(sorted(learn_options))} only apply with `learn_from`")
        self.lexicon = lexicon if lexicon is not None else lexicon_from_data(learn_from, **learn_options)
        if learn_from is not None:
            logger.info("tone_voice: markers learned from %s: %s", learn_from, self.lexicon)
        if not any(self.lexicon.values()):
            raise ValueError(f"tone_voice: no tone has a marker ({learn_from or 'lexicon'} gave {self.lexicon})")
        self.clash = clash
        self._patterns = {tone.lower(): term_pattern(markers) for tone, markers in self.lexicon.items() if markers}

    def __call__(self, completions: list[str], prompts: list[str], tone=None, **columns) -> list[float | None]:
        scores = []
        for text, brief_tone in zip(completions, per_sample(tone, len(completions))):
            own = self._patterns.get((brief_tone or "").lower())
            if own is None:
                scores.append(None)
                continue
            lower = text.lower()
            if own.search(lower):
                scores.append(1.0)
            else:
                other = any(p.search(lower) for t, p in self._patterns.items() if t != brief_tone.lower())
                scores.append(-self.clash if other else 0.0)
        return scores
