"""Platform length rewards: the hard limit and a soft fit, from the specs in rlhf_ads/platforms.yaml.

Limits (each with its source in rlhf_ads/platforms.yaml, which says where a figure is a third party's or
was not confirmed from a cited page): Google RSA headline 30, description 90, path 15; Microsoft
Advertising headline 30, description 90; Meta primary text 125 and headline 40 visible before
truncation. Chinese, Japanese and Korean characters count twice on Google and Microsoft.
"""

from __future__ import annotations

from reward_models._columns import per_sample
from rlhf_ads.rewards import field_spec, width_for


def _limits(n: int, platform, field) -> list[tuple[str, int] | None]:
    out = []
    for p, f in zip(per_sample(platform, n), per_sample(field, n)):
        out.append((p, field_spec(p, f).max_chars) if p and f else None)
    return out


def length_limit(completions: list[str], prompts: list[str], platform=None, field=None, penalty: float = -1.0,
                 **columns) -> list[float | None]:
    """0 within the platform field's limit, `penalty` over it; None where platform/field is unknown."""
    return [None if lim is None else (0.0 if width_for(text.strip(), lim[0]) <= lim[1] else penalty)
            for text, lim in zip(completions, _limits(len(completions), platform, field))]


def length_fit(completions: list[str], prompts: list[str], platform=None, field=None, low: float = 0.6,
               over_slope: float = 4.0, empty: float = 0.0, **columns) -> list[float | None]:
    """Soft fit in [-1, 1]: 1 for `low`..100% of the limit, rising linearly below `low` from `empty`
    (the score of no text; -1 makes a headline-length description cost as much as a long overrun),
    falling by `over_slope` per limit-length over it (e.g. 25% over -> 0)."""
    scores = []
    for text, lim in zip(completions, _limits(len(completions), platform, field)):
        if lim is None:
            scores.append(None)
            continue
        share = width_for(text.strip(), lim[0]) / lim[1]
        if share > 1.0:
            scores.append(max(-1.0, 1.0 - over_slope * (share - 1.0)))
        else:
            scores.append(1.0 if share >= low else empty + (1.0 - empty) * share / low)
    return scores
