"""The brief-specificity reward: its contrast briefs, the log-probs it reads, and the pointwise mutual information."""

import json
import math

import pytest
import torch

from reward_models.specificity import BriefSpecificity, ContrastBriefs, _pointwise_mi
from rlhf_ads.data.briefs import Brief, render_prompt
from rlhf_ads.modeling import load_base
from rlhf_ads.ppo.rollout import completion_logprobs


def brief(product, category, audience, tone, keywords, **fields):
    return Brief(product=product, category=category, audience=audience, tone=tone, keywords=keywords,
                 brand=fields.pop("brand", "Acme"), platform="google_rsa", field="headline", **fields)


POOL = [brief("shoe", "running", "trail runners", "warm", ["trail shoe"]),
        brief("shoe", "running", "road runners", "technical", ["road shoe"]),
        brief("shoe", "running", "trail runners", "warm", ["trail shoe"]),  # the first's fields again
        brief("shoe", "running", "sprinters", "playful", ["spikes"]),
        brief("sock", "running", "hikers", "premium", ["wool sock"]),
        brief("sock", "running", "walkers", "friendly", ["cotton sock"]),
        brief("tent", "camping", "families", "warm", ["big tent"])]
VARIED = ("audience", "tone", "keywords")


def varied(b):
    return b.audience, b.tone, tuple(b.keywords)


def test_contrasts_come_from_the_same_product_first_and_never_repeat_the_brief():
    own = brief("shoe", "running", "trail runners", "warm", ["trail shoe"], brand="Own", landing_page="Page")
    contrasts = ContrastBriefs(POOL, VARIED, k=2)(own)
    assert {varied(c) for c in contrasts} == {varied(POOL[1]), varied(POOL[3])}
    # only the varied fields change: the brand, product, platform and page stay the brief's own
    assert all((c.brand, c.product, c.field, c.landing_page) == ("Own", "shoe", "headline", "Page") for c in contrasts)


def test_contrasts_fall_back_to_the_category_then_any_brief_and_are_always_the_same():
    own = brief("shoe", "running", "trail runners", "warm", ["trail shoe"])
    draw = ContrastBriefs(POOL, VARIED, k=6)
    contrasts = draw(own)
    # 2 other shoes, then the 2 socks of the category, then the tent; the brief's own fields never
    assert [c.audience for c in contrasts[:2]] in (["road runners", "sprinters"], ["sprinters", "road runners"])
    assert {c.audience for c in contrasts[2:4]} == {"hikers", "walkers"}
    assert [c.audience for c in contrasts[4:]] == ["families"]
    assert draw(own) == contrasts and ContrastBriefs(POOL, VARIED, k=6)(own) == contrasts
    unknown = ContrastBriefs(POOL, VARIED, k=2)(brief("stove", "camping", "families", "warm", ["big tent"]))
    assert len(unknown) == 2 and "families" not in {c.audience for c in unknown}  # the tent's fields are its own


def test_contrast_settings_are_checked():
    with pytest.raises(ValueError, match="no briefs"):
        ContrastBriefs([], VARIED)
    with pytest.raises(ValueError, match="`vary` names"):
        ContrastBriefs(POOL, ("mood",))


def test_pointwise_mi_by_hand():
    assert _pointwise_mi([-1.0, -2.0, -3.0]) == pytest.approx(-1.0 - math.log((math.exp(-2) + math.exp(-3)) / 2))
    assert _pointwise_mi([-5.0, -5.0]) == 0.0
    assert _pointwise_mi([-5.0]) == 0.0


def test_completion_logprobs_match_one_unpadded_forward_per_pair(tiny_model_dir):
    model, tokenizer = load_base(str(tiny_model_dir), dtype="fp32")
    prompts = ["Write one headline. Product: trail running shoe.", "Keywords: none.", "Reply with the ad text only."]
    completions = ["Fast, grippy trail shoes.", "Shop now", "Project management software your team will use."]
    expected = []
    for prompt, completion in zip(prompts, completions):
        head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        tail = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logits = model(torch.tensor([head + tail])).logits[0, len(head) - 1:-1]
        expected.append(torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(tail)[:, None]).sum().item())
    # batches of two: left-padded prompts and right-padded completions of different lengths
    assert completion_logprobs(model, tokenizer, prompts, completions, batch_size=2) == pytest.approx(expected, abs=1e-4)


@pytest.fixture
def pool_file(tmp_path):
    path = tmp_path / "briefs.jsonl"
    path.write_text("".join(json.dumps(dict(b.to_dict(), id=f"p{i}")) + "\n" for i, b in enumerate(POOL)))
    return str(path)


def test_reward_is_own_brief_against_its_contrasts_and_none_without_a_brief(tiny_model_dir, pool_file):
    reward = BriefSpecificity(base=str(tiny_model_dir), contrast_from=pool_file, dtype="fp32", contrasts=2)
    own = [brief("shoe", "running", "trail runners", "warm", ["trail shoe"]),
           brief("sock", "running", "hikers", "premium", ["wool sock"])]
    columns = {field: [getattr(b, field) for b in own] + [None] for field in
               ("product", "brand", "category", "audience", "tone", "keywords", "platform", "field")}
    ads = ["Trail shoes for warm runs.", "Wool socks, shop now.", "Any ad"]
    scores = reward(ads, ["", "", "A plain prompt"], **columns)
    assert scores[2] is None
    for b, ad, score in zip(own, ads, scores):
        briefs = [b, *reward.contrasts(b)]
        logprobs = completion_logprobs(reward.model, reward.tokenizer, [render_prompt(x, reward.tokenizer)
                                                                        for x in briefs], [ad] * 3)
        assert score == pytest.approx(_pointwise_mi(logprobs), abs=1e-4)
    # varying a field the prompt does not show gives contrasts that read exactly like the brief: no information
    blind = BriefSpecificity(base=str(tiny_model_dir), contrast_from=pool_file, dtype="fp32", vary=["id"])
    assert blind(ads[:2], ["", ""], **{k: v[:2] for k, v in columns.items()}) == pytest.approx([0.0, 0.0], abs=1e-4)


def test_reward_settings_are_checked(tiny_model_dir, pool_file, tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        BriefSpecificity(base=str(tiny_model_dir), contrast_from=pool_file, contrasts=0)
    with pytest.raises(ValueError, match="holds no PEFT adapter"):
        BriefSpecificity(adapter=str(tmp_path), contrast_from=pool_file)
