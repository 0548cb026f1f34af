"""Make the bundled ad data set, deterministically: same seed, same bytes.

    python scripts/make_dataset.py --seed 0 --out rlhf_ads/data/bundled

Writes briefs.jsonl, sft.jsonl, preferences.jsonl and clicks.jsonl (see the data card,
rlhf_ads/data/bundled/README.md). Vocabulary: scripts/dataset_vocabulary.yaml; ad drafts
and their flaws: scripts/dataset_copywriter.py; utility: rlhf_ads.data.gold.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset_copywriter import add_flaws, write_ad  # noqa: E402

from rlhf_ads.data.briefs import Brief  # noqa: E402
from rlhf_ads.data.designers import DESIGNERS, feature_utility, first_preferred  # noqa: E402
from rlhf_ads.data.gold import ad_features, gold_utility  # noqa: E402

# Platform fields briefs ask for, with their shares.
PLATFORM_FIELDS = [("google_rsa", "headline", 0.30), ("google_rsa", "description", 0.25),
                   ("microsoft_rsa", "headline", 0.07), ("microsoft_rsa", "description", 0.08),
                   ("meta", "primary_text", 0.20), ("meta", "headline", 0.10)]
BRIEFS_PER_PRODUCT = 28
UNIVERSAL_CTAS = ["Learn more", "Get started"]  # fit every category; the rest come from the category
CANDIDATES_PER_BRIEF = 4
PAIRS_PER_BRIEF = 2
CLICK_ROWS_PER_BRIEF = 2

# Click-through model: logit(CTR) = base + relevance + specificity + CTA + cleanliness - position.
CTR_BASE = {"google_rsa": -3.8, "microsoft_rsa": -4.0, "meta": -4.8}
CTR_WEIGHTS = {"keyword_use": 1.1, "specificity": 0.9, "call_to_action": 0.5, "policy_clean": 0.6}
CTR_POSITION_SLOPE = 0.35


def make_briefs(rng: random.Random, vocab: dict) -> tuple[list[dict], dict[str, dict]]:
    """Briefs with their split, and each brief's product entry (by brief id)."""
    briefs, products = [], {}
    shares = [w for _, _, w in PLATFORM_FIELDS]
    for category in vocab["categories"]:
        for product in category["products"]:
            for _ in range(BRIEFS_PER_PRODUCT):
                platform, field, _ = rng.choices(PLATFORM_FIELDS, weights=shares)[0]
                brief_id = f"b{len(briefs):05d}"
                if category["heldout"]:
                    split = "heldout"
                else:
                    draw = rng.random()
                    split = "heldout" if draw < 0.05 else "validation" if draw < 0.10 else "train"
                keywords = rng.sample(product["keywords"], min(len(product["keywords"]), rng.choice([2, 3])))
                briefs.append(dict(
                    id=brief_id, split=split, vertical=category["vertical"], category=category["name"],
                    product=product["name"], brand=rng.choice(product["brands"]),
                    audience=rng.choice(category["audiences"]), tone=rng.choice(vocab["tones"]),
                    keywords=keywords, landing_page=product["landing_page"], platform=platform, field=field))
                products[brief_id] = dict(product, ctas=category["ctas"] + UNIVERSAL_CTAS)
    return briefs, products


def make_candidates(rng: random.Random, brief: dict, product: dict) -> list[dict]:
    """One competent draft plus weaker drafts with 1-3 flaws, each with its gold utility and features."""
    as_brief = Brief(**{k: v for k, v in brief.items() if k != "split"})
    candidates = []
    for index in range(CANDIDATES_PER_BRIEF):
        text, slots = write_ad(rng, brief, product, product["ctas"])
        flaws = []
        if index > 0 and rng.random() < 0.85:
            text, flaws = add_flaws(rng, text, slots, rng.choice([1, 1, 2, 3]))
        candidates.append(dict(text=text, flaws=flaws, features=ad_features(as_brief, text),
                               gold=round(gold_utility(as_brief, text), 4)))
    return candidates


def make_preferences(rng: random.Random, brief: dict, candidates: list[dict], start_id: int) -> list[dict]:
    """Bradley-Terry choices: P(a over b) = sigmoid(sharpness * (U_d(a) - U_d(b)))."""
    rows = []
    names = sorted(DESIGNERS)
    distinct = list({c["text"]: c for c in candidates}.values())
    for _ in range(PAIRS_PER_BRIEF if len(distinct) > 1 else 0):
        a, b = rng.sample(distinct, 2)
        designer = rng.choice(names)
        p_a = first_preferred(designer, feature_utility(designer, a["features"], a["text"]),
                              feature_utility(designer, b["features"], b["text"]))
        chosen, rejected, p_chosen = (a, b, p_a) if rng.random() < p_a else (b, a, 1.0 - p_a)
        rows.append(dict(id=f"p{start_id + len(rows):05d}", brief_id=brief["id"], split=brief["split"],
                         designer_id=designer, chosen=chosen["text"], rejected=rejected["text"],
                         chosen_gold=chosen["gold"], rejected_gold=rejected["gold"],
                         p_designer_chosen=round(p_chosen, 4)))
    return rows


def make_clicks(rng: random.Random, np_rng: np.random.Generator, brief: dict, candidates: list[dict],
                start_id: int) -> list[dict]:
    """Impressions and clicks drawn from the documented CTR model, at random ad positions 1-4."""
    rows = []
    for offset, candidate in enumerate(rng.sample(candidates, CLICK_ROWS_PER_BRIEF)):
        position = rng.randint(1, 4)
        logit = CTR_BASE[brief["platform"]] - CTR_POSITION_SLOPE * (position - 1)
        logit += sum(w * candidate["features"][k] for k, w in CTR_WEIGHTS.items())
        ctr = 1.0 / (1.0 + math.exp(-logit))
        impressions = int(np.clip(np_rng.lognormal(6.5, 0.8), 50, 20000))
        clicks = int(np_rng.binomial(impressions, ctr))
        rows.append(dict(id=f"c{start_id + offset:05d}", brief_id=brief["id"], split=brief["split"],
                         ad=candidate["text"], position=position, impressions=impressions, clicks=clicks,
                         true_ctr=round(ctr, 5)))
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "rlhf_ads/data/bundled")
    parser.add_argument("--vocabulary", type=Path, default=Path(__file__).with_name("dataset_vocabulary.yaml"))
    args = parser.parse_args(argv)
    rng, np_rng = random.Random(args.seed), np.random.default_rng(args.seed)
    vocab = yaml.safe_load(args.vocabulary.read_text(encoding="utf-8"))
    briefs, products = make_briefs(rng, vocab)
    sft, preferences, clicks = [], [], []
    for brief in briefs:
        product = products[brief["id"]]
        candidates = make_candidates(rng, brief, product)
        sft.append(dict(id=f"s{len(sft):05d}", brief_id=brief["id"], split=brief["split"],
                        completion=candidates[0]["text"], gold=candidates[0]["gold"]))
        preferences.extend(make_preferences(rng, brief, candidates, len(preferences)))
        clicks.extend(make_clicks(rng, np_rng, brief, candidates, len(clicks)))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in [("briefs", briefs), ("sft", sft), ("preferences", preferences), ("clicks", clicks)]:
        write_jsonl(args.out / f"{name}.jsonl", rows)
        print(f"{name}: {len(rows)} rows")
    print_summary(briefs, sft, preferences, clicks)


def print_summary(briefs: list[dict], sft: list[dict], preferences: list[dict], clicks: list[dict]) -> None:
    """The figures the data card quotes."""
    splits = {s: sum(b["split"] == s for b in briefs) for s in ("train", "validation", "heldout")}
    unseen = {b["category"] for b in briefs if b["split"] == "heldout"} - {b["category"] for b in briefs if b["split"] == "train"}
    by_id = {b["id"]: Brief(**{k: v for k, v in b.items() if k != "split"}) for b in briefs}
    fits = [ad_features(by_id[r["brief_id"]], r["completion"])["length_fit"] > 0 for r in sft]
    agree = sum(p["chosen_gold"] > p["rejected_gold"] for p in preferences) / len(preferences)
    ceiling = sum(max(p["p_designer_chosen"], 1 - p["p_designer_chosen"]) for p in preferences) / len(preferences)
    held = [p for p in preferences if p["split"] == "heldout"]
    held_ceiling = sum(max(p["p_designer_chosen"], 1 - p["p_designer_chosen"]) for p in held) / len(held)
    ctr = sum(c["clicks"] for c in clicks) / sum(c["impressions"] for c in clicks)
    print(f"splits {splits}; held-out categories unseen in training: {sorted(unseen)}")
    print(f"sft: within limit {sum(fits) / len(fits):.3f}, mean gold {sum(r['gold'] for r in sft) / len(sft):.3f}")
    print(f"preferences: chosen has higher gold {agree:.3f}; noise ceiling {ceiling:.3f} (held-out {held_ceiling:.3f})")
    print(f"clicks: pooled CTR {ctr:.4f}")


if __name__ == "__main__":
    main()
