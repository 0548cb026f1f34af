"""Validation during PPO (ppo.eval_every): proxy and gold on fixed briefs, logged side by side; the best policy kept."""

import json

import pytest

from rlhf_ads import config
from rlhf_ads.modeling import load_tokenizer
from rlhf_ads.ppo import trainer
from rlhf_ads.ppo.validation import Validation
from rlhf_ads.rewards import CompositeReward
from tests.helpers import write_length_reward

TINY = ["model.dtype=fp32", "ppo.batch_size=4", "ppo.mini_batch_size=2", "ppo.ppo_epochs=1", "ppo.max_new_tokens=6",
        "ppo.max_prompt_tokens=256", "ppo.training.learning_rate=0.001", "ppo.training.save_steps=10"]


def test_validation_logs_proxy_and_gold_and_keeps_the_best_policy(tmp_path, tiny_model_dir):
    recipe = config.load(None, [f"model.base={tiny_model_dir}", f"output_dir={tmp_path}", *TINY, "ppo.steps=3",
                                "ppo.eval_every=2", "ppo.eval_num_prompts=3", "evaluate.max_new_tokens=5"])
    recipe.rewards = [config.RewardSpec(function=write_length_reward(tmp_path), name="mine")]
    final = trainer.run(recipe)
    out = tmp_path / "quickstart/ppo"
    records = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2, 3]  # before training, every 2 steps, after the last
    for record in records:
        assert {"ppo/eval/reward", "ppo/eval/gold", "ppo/eval/mine", "ppo/eval/within_limit",
                "ppo/eval/distinct_2"} <= set(record)
    assert final["ppo/eval/reward"] == records[-1]["ppo/eval/reward"]
    best = json.loads((out / "best/best.json").read_text())
    rewards = [r["ppo/eval/reward"] for r in records]
    assert best["step"] == records[rewards.index(max(rewards))]["step"]  # the first of the best
    assert (out / "best/policy/adapter_config.json").is_file()
    assert all("ppo/eval/reward" not in json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines())
    tokenizer, mix = load_tokenizer(str(tiny_model_dir)), CompositeReward.from_specs(recipe.rewards)
    assert Validation(recipe, tokenizer, mix, out, start_step=3).best == pytest.approx(max(rewards))  # resumed
    if best["step"] > 0:  # resumed from a checkpoint before the best: that best is gone with its steps
        assert Validation(recipe, tokenizer, mix, out, start_step=best["step"] - 1).best is None
        assert not (out / "best").exists()
    assert Validation(recipe, tokenizer, mix, out, start_step=0).best is None  # a fresh run starts clean
    assert Validation(recipe, tokenizer, mix, out, start_step=0).prompts.max_new_tokens == 5  # evaluate's budget
    assert not (out / "best").exists() and not (out / "eval.jsonl").exists()


def test_validation_scores_skip_the_running_normalization_and_leave_it_alone(tmp_path):
    """Validation totals compare across steps (raw values of normalizing components) and do not move the
    statistics the training normalizes with."""
    rewards = CompositeReward.from_specs([config.RewardSpec(function=write_length_reward(tmp_path), normalize=True)])
    rewards.score(["short ad", "a much longer ad than that"], ["p", "p"])
    before = rewards.state_dict()
    raw = rewards.score(["x" * 40, "y"], ["p", "p"], running_normalization=False)
    assert rewards.state_dict() == before and raw.total == raw.raw[rewards.components[0].name]
    rewards.score(["x" * 40, "y"], ["p", "p"])
    assert rewards.state_dict() != before
