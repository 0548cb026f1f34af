"""The `ad_policy` reward: minus a penalty per editorial-policy violation (the rules live in rlhf_ads.lint)."""

from __future__ import annotations

from reward_models._columns import per_sample
from rlhf_ads.rewards import context_for, lint


def ad_policy(completions: list[str], prompts: list[str], platform=None, field=None, penalty: float = 1.0,
              prohibited_terms=None, supported_claims=None, allowed_caps=None, **columns) -> list[float]:
    """Minus `penalty` per policy violation (0 for a clean ad); a rule's findings count once per kind (five words
    in capitals are one violation, as the lint reports them). Length is left to the length rewards."""
    n = len(completions)
    scores = []
    for text, p, f in zip(completions, per_sample(platform, n), per_sample(field, n)):
        ctx = context_for(p, f, prohibited_terms=prohibited_terms, supported_claims=supported_claims,
                          allowed_caps=allowed_caps)
        scores.append(-penalty * sum(1 for v in lint(text, ctx) if v.rule != "over_limit"))
    return scores
