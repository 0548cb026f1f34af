"""The simulated copywriter behind the bundled data: varied ad structures, and the flaws of weaker drafts.

`write_ad` fills one of several structures per platform field from a product's
facts, benefits, keywords and the brief's tone, preferring structures that fit the
limit. `add_flaws` turns a draft into a weaker one with realistic problems.
"""

from __future__ import annotations

import itertools
import random
import re

from rlhf_ads.platforms import field_spec, width_for

TONE_LINES = {
    "friendly": ["Easy to start.", "We're happy to help.", "Simple from day one."],
    "premium": ["Crafted with care.", "Refined in every detail.", "A signature experience."],
    "playful": ["Ready for some fun?", "Treat yourself.", "You'll love it."],
    "authoritative": ["Proven and trusted.", "Backed by certified experts.", "Built to a higher standard."],
    "urgent-but-honest": ["Offer ends Sunday.", "Limited spots this week.", "Pricing changes next month."],
    "warm": ["Made for your family.", "Comfort you can count on.", "Welcome home."],
    "technical": ["Specs that matter.", "Integrates via API.", "99.9% uptime SLA."],
    "minimalist": [""],
}
CLASH_LINES = ["Yay, so much fun!", "Oh hey, treat time!", "Integrates via SDK and API.", "Trusted by experts."]

# Structures per field; [optional parts] are dropped, fewest first, until the draft fits the limit.
HEADLINE = ["{Kw}", "{Kw}[ | {Brand}]", "{Brand} {Product}", "{Fact}", "{Cta}: {Kw}", "{Benefit}",
            "{Kw}[ from {Brand}]", "{Product}[, {fact}]", "{Brand}: {fact}"]
DESCRIPTION = [
    "{Benefit}[ with {Brand}'s {product}]. {Fact}[ and {fact2}]. {Cta}.",
    "{Kw}: {fact}[, {fact2}]. [{Tone} ]{Cta} today.",
    "{Audience} choose {Brand}[ for {benefit}]. {Fact}. {Cta}.",
    "{Fact}[, {fact2}] and {benefit}. {Cta}[ at {Brand}].",
    "Looking for {kw}? {Brand} offers {fact}[ and {benefit}]. {Cta}.",
    "{Brand}[ {product}]: {benefit}. {Fact}. [{Tone} ]{Cta}.",
]
PRIMARY_TEXT = [
    "{Audience}: meet {Brand}'s {product}. {Fact}[, {fact2}] and {benefit}. [{Tone} ]{Cta}[ today].",
    "Looking for {kw}? {Brand} gives you {benefit}, with {fact}[ and {fact2}]. {Cta}.",
    "{Benefit}[, without the hassle]. {Brand} {product} comes with {fact}. [{Tone} ]{Cta}.",
    "[{Tone} ]{Brand} {product}[ for {audience}]: {fact}[, {fact2}]. {Cta}[ and see the difference].",
]
META_HEADLINE = ["{Kw}[ from {Brand}]", "{Benefit}[ with {Brand}]", "{Brand} {Product}[: {fact}]", "{Cta}: {Kw}",
                 "{Fact}. {Cta}"]
META_DESCRIPTION = ["{Fact}", "{Cta} today", "{Benefit}", "{Kw}"]
STRUCTURES = {"headline": HEADLINE, "description": DESCRIPTION, "primary_text": PRIMARY_TEXT, "path": ["{Kw}"]}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _slots(rng: random.Random, brief: dict, product: dict, ctas: list[str]) -> dict[str, str]:
    facts = rng.sample(product["facts"], 2)
    slots = {
        "brand": brief["brand"], "product": product["name"], "kw": rng.choice(brief["keywords"]),
        "fact": facts[0], "fact2": facts[1], "benefit": rng.choice(product["benefits"]),
        "cta": rng.choice(ctas), "audience": brief["audience"], "tone": rng.choice(TONE_LINES[brief["tone"]]),
    }
    out = dict(slots)
    out.update({k[:1].upper() + k[1:]: _cap(v) for k, v in slots.items()})
    out["Product"] = " ".join(w[:1].upper() + w[1:] for w in product["name"].split())
    return out


def _variants(structure: str) -> list[str]:
    """Every version of a structure with some [optional parts] dropped, fullest first."""
    parts = re.split(r"(\[[^\]]*\])", structure)
    optional = [i for i, p in enumerate(parts) if p.startswith("[")]
    versions = []
    for keep in range(len(optional), -1, -1):
        for kept in itertools.combinations(optional, keep):
            versions.append("".join(p.strip("[]") if i in kept else ("" if i in optional else p)
                                    for i, p in enumerate(parts)))
    return versions


def _fill(structure: str, slots: dict[str, str]) -> str:
    return " ".join(structure.format(**slots).split()).replace(" .", ".")


def write_ad(rng: random.Random, brief: dict, product: dict, ctas: list[str],
             fit_rate: float = 0.92) -> tuple[str, dict[str, str]]:
    """A competent draft and its slot values: a random structure, within the limit with probability `fit_rate`.

    Within the limit, the fullest version of the structure that fits is used.
    """
    structures = STRUCTURES[brief["field"]]
    if brief["platform"] == "meta":
        structures = {"headline": META_HEADLINE, "description": META_DESCRIPTION}.get(brief["field"], structures)
    limit = field_spec(brief["platform"], brief["field"]).max_chars
    fitting, overlong = [], []
    for structure in structures:
        slots = dict(_slots(rng, brief, product, ctas), category=brief["category"])
        versions = [_fill(v, slots) for v in _variants(structure)]
        fits = [v for v in versions if width_for(v, brief["platform"]) <= limit]
        (fitting if fits else overlong).append((fits[0] if fits else versions[0], slots))
        overlong.append((versions[0], slots))
    pool = fitting if fitting and rng.random() < fit_rate else overlong
    return rng.choice(pool)


def _drop_cta(text, rng, ctx):
    return text.replace(ctx["cta"] + ".", "").replace(ctx["cta"] + " today.", "").replace(ctx["cta"], "").strip()


def _generic(text, rng, ctx):
    return rng.choice([f"Great {ctx['category']} at great prices.", "Quality you can trust. Shop now.",
                       f"All your {ctx['category']} needs in one place."])


def _truncate(text, rng, ctx):
    cut = rng.randint(max(4, len(text) // 2), max(5, len(text) - 2))
    return text[:cut].rstrip() if text[cut - 1:cut].isalpha() and text[cut:cut + 1].isalpha() else text[:cut] + "ab"


FLAWS = {
    "over_length": lambda t, r, c: f"{t} {_cap(c['fact2'])}, {c['benefit']} and more for {c['audience']}.",
    "capitals": lambda t, r, c: " ".join(w.upper() if len(w) > 3 and r.random() < 0.5 else w for w in t.split()),
    "exclamations": lambda t, r, c: t.rstrip(".!") + r.choice(["!!!", "!!", "?!"]),
    "click_here": lambda t, r, c: (t.replace(c["cta"], "Click here") if c["cta"] in t else t + " Click here."),
    "superlative": lambda t, r, c: r.choice(["The best ", "#1 ", "World's best "]) + t[:1].lower() + t[1:],
    "pressure": lambda t, r, c: t.rstrip(".") + r.choice([". Last chance!", ". Don't miss out.", ". Act now!"]),
    "no_call_to_action": _drop_cta,
    "generic": _generic,
    "repetition": lambda t, r, c: r.choice(["Sale, sale, sale! ", "Now now now. "]) + t,
    "emoji": lambda t, r, c: t + r.choice([" 🔥", " 🎉", " ✨"]),
    "truncated": _truncate,
    "off_tone": lambda t, r, c: r.choice(CLASH_LINES) + " " + t,
    "symbols": lambda t, r, c: t.replace("s", "$", 1).replace("a", "@", 1),
}


def add_flaws(rng: random.Random, text: str, ctx: dict, count: int) -> tuple[str, list[str]]:
    """Apply `count` distinct random flaws; returns the text and the flaw names."""
    names = rng.sample(sorted(FLAWS), count)
    for name in names:
        text = " ".join(FLAWS[name](text, rng, ctx).split())
    return text, names
