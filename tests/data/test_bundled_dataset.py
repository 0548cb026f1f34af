"""The bundled data set: its generator is deterministic and the data has the promised shape."""

import collections
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from rlhf_ads.data import load_briefs, load_rows
from rlhf_ads.data.bundled import BUNDLED_DIR
from rlhf_ads.data.gold import gold_utility
from rlhf_ads.platforms import width_for

REPO = Path(__file__).resolve().parents[2]
FILES = ("briefs.jsonl", "sft.jsonl", "preferences.jsonl", "clicks.jsonl")


def digests(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def generate(out, seed):
    subprocess.run([sys.executable, str(REPO / "scripts/make_dataset.py"), "--seed", str(seed), "--out", str(out)],
                   check=True, capture_output=True, cwd=REPO)
    return digests(out)


def test_generator_is_deterministic_and_matches_the_committed_files(tmp_path):
    first = generate(tmp_path / "a", 0)
    assert first == generate(tmp_path / "b", 0)  # same seed, same bytes
    assert first == digests(BUNDLED_DIR)  # the committed data is the generator's output
    assert generate(tmp_path / "c", 1) != first


def test_bundled_data_shape():
    briefs = load_briefs("bundled:briefs")
    assert len(briefs) >= 3000
    assert len({b.category for b in briefs}) >= 30
    train_categories = {b.category for b in load_briefs("bundled:train")}
    heldout_categories = {b.category for b in load_briefs("bundled:heldout")}
    assert heldout_categories - train_categories and heldout_categories & train_categories  # partly unseen
    prefs = load_rows("bundled:preferences", "preferences")
    assert len(prefs) >= 6000 and len({p["designer_id"] for p in prefs}) >= 8
    clicks = load_rows("bundled:clicks", "clicks")
    assert all(0 <= c["clicks"] <= c["impressions"] for c in clicks)
    assert sum(f.stat().st_size for f in BUNDLED_DIR.glob("*.jsonl")) < 8 * 2**20


def test_sft_ads_mostly_fit_and_gold_is_the_documented_function():
    sft = load_rows("bundled:sft", "sft")
    fits = [width_for(r["completion"], r["brief"].platform) <= r["brief"].max_chars for r in sft]
    assert sum(fits) / len(fits) > 0.85
    structures = collections.Counter(r["completion"].split()[0] for r in sft)
    assert len(structures) > 50  # varied openings, not one template
    for row in sft[:200]:
        assert abs(gold_utility(row["brief"], row["completion"]) - row["gold"]) < 1e-3


def test_preferences_follow_gold_mostly_with_a_noise_ceiling():
    prefs = load_rows("bundled:preferences", "preferences")
    agree = sum(p["chosen_gold"] > p["rejected_gold"] for p in prefs) / len(prefs)
    ceiling = sum(max(p["p_designer_chosen"], 1 - p["p_designer_chosen"]) for p in prefs) / len(prefs)
    assert 0.75 < agree < 0.97 and 0.8 < ceiling < 0.97
    assert json.loads(json.dumps(prefs[0]["chosen"]))  # plain text
