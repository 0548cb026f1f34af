"""`rlhf-ads evaluate` on a tiny model: every checkpoint gets every metric; bad folders are explained."""

import json

import pytest

from rlhf_ads import config
from rlhf_ads.data import load_briefs
from rlhf_ads.errors import RlhfAdsError
from rlhf_ads.evaluation import evaluate
from rlhf_ads.stages import sft


def test_evaluate_compares_base_and_sft(tmp_path, tiny_model_dir):
    common = [f"model.base={tiny_model_dir}", f"output_dir={tmp_path}", "model.dtype=fp32", "model.use_lora=true"]
    sft.run(config.load(None, [*common, "sft.training.max_steps=2", "sft.training.max_train_rows=4",
                               "sft.training.max_eval_rows=2", "sft.num_samples=0", "sft.training.max_length=1024"]))
    briefs = tmp_path / "briefs.jsonl"  # three briefs: num_briefs=all takes every one
    briefs.write_text("".join(json.dumps(b.to_dict()) + "\n" for b in load_briefs("bundled:heldout")[:3]))
    recipe = config.load(None, [*common, "evaluate.models=[base, sft]", f"evaluate.briefs={briefs}",
                                "evaluate.num_briefs=all", "evaluate.samples_per_brief=2", "evaluate.max_new_tokens=4"])
    recipe.rewards = [config.RewardSpec(function="length_limit")]
    metrics = evaluate.run(recipe)
    for name in ("base", "sft"):
        for key in ("gold", "compliance", "within_limit", "keyword_coverage", "distinct_2", "top_opening_share",
                    "composite_reward", "kl_to_sft", "gold_low", "gold_high", "sampled/gold", "sampled/gold_low",
                    "sampled/compliance"):
            assert f"eval/{name}/{key}" in metrics, (name, key)
    assert metrics["eval/sft/kl_to_sft"] == pytest.approx(0.0, abs=1e-6)
    for key in ("gold_vs_sft", "gold_vs_sft_low", "win_rate_vs_sft_gold", "sampled/gold_vs_sft"):
        assert f"eval/base/{key}" in metrics and f"eval/sft/{key}" not in metrics, key
    samples = [json.loads(line) for line in (tmp_path / "quickstart/report/samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 and {"base", "sft"} <= set(samples[0])
    sampled = [s["base"]["sampled"] for s in samples]
    assert all(len(ads) == 2 for ads in sampled)
    mean_of_means = sum(sum(ad["gold"] for ad in ads) / 2 for ads in sampled) / 3
    assert metrics["eval/base/sampled/gold"] == pytest.approx(mean_of_means)
    summary = json.loads((tmp_path / "quickstart/report/metrics.json").read_text())["summary"]
    assert any(line.startswith("greedy: base's gold ") for line in summary)
    assert any(line.startswith("sampled: base's gold ") for line in summary)


def test_adapter_folders_of_the_same_name_get_names_that_tell_them_apart(tmp_path):
    for run in ("a", "b"):
        (tmp_path / run / "ppo/policy").mkdir(parents=True)
        (tmp_path / run / "ppo/policy/adapter_config.json").write_text("{}")
    recipe = config.load(None, [f"output_dir={tmp_path}",
                                f"evaluate.models=[base, {tmp_path}/a/ppo/policy, {tmp_path}/b/ppo/policy]"])
    assert list(evaluate.model_folders(recipe)) == ["base", "a-ppo-policy", "b-ppo-policy"]


def test_ppo_best_names_the_policy_kept_at_the_best_validation_proxy(tmp_path):
    recipe = config.load(None, [f"output_dir={tmp_path}", "evaluate.models=[ppo_best]"])
    with pytest.raises(RlhfAdsError, match=r"checkpoint 'ppo_best': folder '.*ppo/best/policy' has no PEFT adapter"):
        evaluate.model_folders(recipe)
    (tmp_path / "quickstart/ppo/best/policy").mkdir(parents=True)
    (tmp_path / "quickstart/ppo/best/policy/adapter_config.json").write_text("{}")
    assert evaluate.model_folders(recipe) == {"ppo_best": tmp_path / "quickstart/ppo/best/policy"}


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


def test_generated_kl_matches_one_row_at_a_time(tiny_model_dir):
    """KL from the generation's own logits plus one batched, left-padded reference pass == the plain
    per-row sum over the generated tokens of sum_v p(v) (log p(v) - log q(v)), recomputed without padding,
    with the policy a perturbed LoRA adapter."""
    import torch

    from rlhf_ads.config import LoraSettings
    from rlhf_ads.generation import adapter_active, generate_completions
    from rlhf_ads.modeling import add_lora, load_base

    model, tokenizer = load_base(str(tiny_model_dir), dtype="fp32")
    model = add_lora(model, LoraSettings(r=4, alpha=8), adapter_name="policy")
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(std=0.5)
    model.add_adapter("reference", model.peft_config["policy"])  # lora_B = 0: the base itself
    prompts = ["Write an ad for shoes", "Hi", "A much longer prompt about running shoes for trails"]
    decoding = dict(max_new_tokens=5, temperature=0.0, top_p=1.0, batch_size=2)
    ads, kls = evaluate.generate_ads(model, tokenizer, prompts, "policy", "reference", decoding)
    with adapter_active(model, "policy"):
        assert ads == generate_completions(model, tokenizer, prompts, **decoding)

    def plain(prompt: str) -> float:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            model.set_adapter("policy")
            ids = model.generate(torch.tensor([p]), max_new_tokens=5, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            log_p = torch.log_softmax(model(input_ids=ids).logits[0, len(p) - 1:-1], -1)
            model.set_adapter("reference")
            log_q = torch.log_softmax(model(input_ids=ids).logits[0, len(p) - 1:-1], -1)
        return float((log_p.exp() * (log_p - log_q)).sum())

    expected = [plain(p) for p in prompts]
    assert min(expected) > 1e-3  # the perturbed policy really differs from the reference
    assert kls == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_response_mask_ends_at_the_first_stop_token():
    import torch

    from rlhf_ads.generation import GeneratedBatch

    new_ids = torch.tensor([[5, 6, 2, 0, 0], [5, 6, 7, 8, 9], [9, 2, 2, 2, 2]])
    batch = GeneratedBatch(new_ids[:, :1], torch.ones(3, 1), new_ids, None, ["", "", ""])
    assert batch.response_mask([2, 3]).int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]


def test_evaluate_takes_plain_prompts_and_briefs_without_a_limit(tmp_path, tiny_model_dir):
    """Rows with no brief (or a brief without platform and field) get every metric that does not need one; the gold
    utility and the within-limit rate count only when every row has what they need (issue #27, item 3)."""
    rows = [{"id": "p1", "prompt": "Write a headline for a trail running shoe."},
            {"id": "b1", "product": "budgeting app", "keywords": ["budget"]},
            {"id": "b2", "product": "trail shoe", "platform": "google_rsa", "field": "headline"}]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = config.load(None, [f"model.base={tiny_model_dir}", f"output_dir={tmp_path}", "model.dtype=fp32",
                                "evaluate.models=[base]", f"evaluate.briefs={path}", "evaluate.max_new_tokens=3"])
    recipe.rewards = [config.RewardSpec(function="length_limit"), config.RewardSpec(function="keyword_coverage")]
    metrics = evaluate.run(recipe)
    assert "eval/base/gold" not in metrics and "eval/base/compliance" in metrics
    assert "eval/base/within_limit" in metrics and "eval/base/reward/length_limit" in metrics
    samples = [json.loads(line) for line in (tmp_path / "quickstart/report/samples.jsonl").read_text().splitlines()]
    assert [s["max_chars"] for s in samples] == [None, None, 30] and samples[0]["prompt"] == rows[0]["prompt"]
    assert "Write a headline for a trail running shoe." in (tmp_path / "quickstart/report/report.html").read_text()
