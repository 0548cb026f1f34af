"""Trained scorer folders (full model or LoRA adapter + score head) as reward functions."""

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from reward_models._columns import sample_briefs
from reward_models.learned import ClickThroughReward, LearnedReward
from rlhf_ads.config import LoraSettings
from rlhf_ads.errors import ModelLoadError
from rlhf_ads.data import SCORER_INPUT, brief_context, scorer_text
from rlhf_ads.modeling import SCORER_META, load_base

ADS = ["Trail shoes. Shop now.", "Project tool"]
PROMPTS = ["Brief: trail shoes", "Brief: project tool"]


def expected_logit(model, tokenizer, prompt, ad, brief=None):
    text = scorer_text(prompt, ad, brief) + tokenizer.eos_token
    with torch.no_grad():
        return model(**tokenizer([text], return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()


def saved_full_scorer(tmp_path, model_dir):
    """A tiny sequence classifier saved as a full model folder, and the LearnedReward reading it back."""
    model, tokenizer = load_base(str(model_dir), dtype="fp32", model_class=AutoModelForSequenceClassification,
                                 num_labels=1)
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    return model, tokenizer, LearnedReward(str(tmp_path / "rm"), dtype="fp32")


def test_full_model_folder_scores_like_the_model(tmp_path, tiny_model_dir):
    model, tokenizer, reward = saved_full_scorer(tmp_path, tiny_model_dir)
    scores = reward(ADS, PROMPTS)
    model.eval()
    expected = [expected_logit(model, tokenizer, p, a) for p, a in zip(PROMPTS, ADS)]
    assert scores == pytest.approx(expected, abs=1e-5)
    ctr = ClickThroughReward(str(tmp_path / "rm"), dtype="fp32")(ADS, PROMPTS)
    assert ctr == pytest.approx(torch.sigmoid(torch.tensor(expected)).tolist(), abs=1e-5)


def test_adapter_folder_keeps_its_trained_score_head(tmp_path, tiny_model_dir):
    model, _ = load_base(str(tiny_model_dir), dtype="fp32", model_class=AutoModelForSequenceClassification,
                         num_labels=1, lora=LoraSettings(r=4, alpha=8))
    with torch.no_grad():  # stand-in for training: the head moves away from its initialisation
        for name, param in model.named_parameters():
            if "score" in name and param.requires_grad:
                param.add_(0.5)
    model.save_pretrained(tmp_path / "rm")
    (tmp_path / "rm" / SCORER_META).write_text(json.dumps({"base": str(tiny_model_dir), "kind": "pairwise",
                                                          "score_mean": 1.0, "score_std": 2.0}))
    reward = LearnedReward(str(tmp_path / "rm"), dtype="fp32")
    tokenizer = reward.tokenizer
    model.eval()
    expected = expected_logit(model, tokenizer, PROMPTS[0], ADS[0])
    assert reward(ADS[:1], PROMPTS[:1])[0] == pytest.approx(expected, abs=1e-5)
    standardized = LearnedReward(str(tmp_path / "rm"), dtype="fp32", standardize=True)(ADS[:1], PROMPTS[:1])[0]
    assert standardized == pytest.approx((expected - 1.0) / 2.0, abs=1e-5)


def test_not_a_scorer_folder_is_explained(tmp_path):
    with pytest.raises(ModelLoadError, match="not a trained scorer folder"):
        LearnedReward(str(tmp_path))


def test_brief_columns_become_the_trained_context(tmp_path, tiny_model_dir):
    model, tokenizer, reward = saved_full_scorer(tmp_path, tiny_model_dir)
    columns = dict(platform=["google_rsa"], field=["headline"], brand=["Ridgeline"], product=["trail shoe"],
                   keywords=[["trail shoes"]], tone=["friendly"], landing_page=["Trail shoe at $129."])
    brief = sample_briefs(["ignored chat prompt"], columns)[0]
    context = brief_context(brief)
    assert context.startswith("google_rsa headline (max 30 chars) | brand: Ridgeline") and "trail shoes" in context
    model.eval()
    # A scorer saved without our metadata (or by an older release) reads the ad without its fit to the limit...
    assert reward(ADS[:1], ["ignored chat prompt"], **columns)[0] == pytest.approx(
        expected_logit(model, tokenizer, context, ADS[0]), abs=1e-5)
    # ...one trained on SCORER_INPUT reads it with the fit, as the reward stage trained it.
    (tmp_path / "rm" / SCORER_META).write_text(json.dumps({"input": SCORER_INPUT}))
    fitted = LearnedReward(str(tmp_path / "rm"), dtype="fp32")(ADS[:1], ["ignored chat prompt"], **columns)[0]
    assert fitted == pytest.approx(expected_logit(model, tokenizer, context, ADS[0], brief), abs=1e-5)
    assert fitted != pytest.approx(expected_logit(model, tokenizer, context, ADS[0]), abs=1e-5)
