"""Best-of-n keeps, for each prompt, the sample the recipe's reward mix scores highest; `generate.best_of` uses it."""

import json
import math

import pytest

from rlhf_ads import config
from rlhf_ads.best_of_n import best_indices, best_of_n, best_of_n_kl
from rlhf_ads.data import load_prompts, render_row_prompt, reward_columns
from rlhf_ads.errors import ConfigError
from rlhf_ads.modeling import load_base
from rlhf_ads.rewards import CompositeReward
from rlhf_ads.stages import generate

MIX = """
def spread(completions, prompts, **columns):
    return [sum(map(ord, c)) % 11 / 11 for c in completions]

def width(completions, prompts, **columns):
    assert all(isinstance(k, list) or k is None for k in columns["keywords"])  # the brief's columns arrive
    return [min(len(c), 30) / 30 for c in completions]
"""


def mix_specs(tmp_path) -> list[config.RewardSpec]:
    (tmp_path / "mix.py").write_text(MIX)
    return [config.RewardSpec(function=f"{tmp_path / 'mix.py'}:spread", name="spread", weight=2.0),
            config.RewardSpec(function=f"{tmp_path / 'mix.py'}:width", name="width", weight=-0.5)]


def test_best_indices_take_each_groups_first_highest():
    assert best_indices([0.1, 0.9, 0.3, 0.5, 0.5, 0.2], 3) == [1, 3]
    with pytest.raises(ValueError, match="groups of n=4"):
        best_indices([0.1, 0.2, 0.3], 4)
    assert best_of_n_kl(1) == 0 and best_of_n_kl(4) == pytest.approx(math.log(4) - 0.75)


def test_best_of_n_keeps_the_argmax_of_the_weighted_mix(tmp_path, tiny_model_dir):
    model, tokenizer = load_base(str(tiny_model_dir), dtype="fp32")
    rows = load_prompts("bundled:heldout")[:3]
    prompts = [render_row_prompt(r, tokenizer) for r in rows]
    rewards = CompositeReward.from_specs(mix_specs(tmp_path))
    chosen = best_of_n(model, tokenizer, prompts, reward_columns(rows), rewards, 4, max_new_tokens=5,
                       temperature=1.0, batch_size=6)
    assert len(chosen.ads) == 3 and all(len(c) == 4 for c in chosen.candidates)
    for ad, score, candidates, prompt, row in zip(chosen.ads, chosen.scores, chosen.candidates, prompts, rows):
        mix = [2.0 * (sum(map(ord, c)) % 11 / 11) - 0.5 * min(len(c), 30) / 30 for c in candidates]  # by hand
        assert ad == candidates[mix.index(max(mix))] and score == pytest.approx(max(mix))
    assert len({c for group in chosen.candidates for c in group}) > 3  # sampled, not n copies of one ad


def test_generate_writes_the_best_of_n_samples_and_needs_a_mix(tmp_path, tiny_model_dir):
    overrides = [f"model.base={tiny_model_dir}", "model.dtype=fp32", f"output_dir={tmp_path}", "generate.num_briefs=2",
                 "generate.max_new_tokens=4", "generate.best_of=3"]
    with pytest.raises(ConfigError, match="best_of=3 keeps the ad the reward mix scores highest"):
        generate.run(config.load(None, overrides))
    with pytest.raises(ConfigError, match="best_of=3 needs sampling"):
        config.load(None, [*overrides, "generate.temperature=0"])
    recipe = config.load(None, overrides)
    recipe.rewards = mix_specs(tmp_path)
    metrics = generate.run(recipe)
    samples = [json.loads(line) for line in (tmp_path / "quickstart/generate/samples.jsonl").read_text().splitlines()]
    assert metrics["generate/best_of"] == 3 and all("reward" in s for s in samples)
    assert metrics["generate/mean_reward"] == pytest.approx(sum(s["reward"] for s in samples) / 2)
