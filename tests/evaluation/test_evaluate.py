"""`rlhf-ads evaluate` on a tiny model: every checkpoint gets every metric; bad folders are explained."""

import json

import pytest

from rlhf_ads import config
from rlhf_ads.errors import RlhfAdsError
from rlhf_ads.evaluation import evaluate
from rlhf_ads.stages import sft


def test_evaluate_compares_base_and_sft(tmp_path, tiny_model_dir):
    common = [f"model.base={tiny_model_dir}", f"output_dir={tmp_path}", "model.dtype=fp32", "model.use_lora=true"]
    sft.run(config.load(None, [*common, "sft.training.max_steps=2", "sft.training.max_train_rows=4",
                               "sft.training.max_eval_rows=2", "sft.num_samples=0", "sft.training.max_length=1024"]))
    recipe = config.load(None, [*common, "evaluate.models=[base, sft]", "evaluate.num_briefs=3",
                                "evaluate.max_new_tokens=4"])
    recipe.rewards = [config.RewardSpec(function="length_limit")]
    metrics = evaluate.run(recipe)
    for name in ("base", "sft"):
        for key in ("gold", "compliance", "within_limit", "keyword_coverage", "distinct_2", "composite_reward",
                    "kl_to_sft"):
            assert f"eval/{name}/{key}" in metrics, (name, key)
    assert metrics["eval/sft/kl_to_sft"] == pytest.approx(0.0, abs=1e-6)
    samples = [json.loads(line) for line in (tmp_path / "quickstart/report/samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 and {"base", "sft"} <= set(samples[0])


def test_missing_checkpoint_folder_is_named(tmp_path, tiny_model_dir):
    recipe = config.load(None, [f"model.base={tiny_model_dir}", f"output_dir={tmp_path}", "evaluate.models=[ppo]"])
    with pytest.raises(RlhfAdsError, match=r"checkpoint 'ppo': folder '.*ppo/policy' has no PEFT adapter"):
        evaluate.run(recipe)


def test_adapter_of_another_base_is_explained(tmp_path, tiny_model_dir):
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlhf_ads.config import LoraSettings
    from rlhf_ads.modeling import add_lora

    other = LlamaForCausalLM(LlamaConfig(vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    add_lora(other, LoraSettings(r=2, alpha=4)).save_pretrained(tmp_path / "foreign")
    recipe = config.load(None, [f"model.base={tiny_model_dir}", f"output_dir={tmp_path}",
                                f"evaluate.models=[{tmp_path / 'foreign'}]"])
    with pytest.raises(RlhfAdsError, match="does not fit the base model"):
        evaluate.run(recipe)
