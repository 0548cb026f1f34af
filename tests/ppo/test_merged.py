"""Sampling from merged weights: the merged copy computes what the PEFT model computes, follows the adapter as
it trains, never changes the base, and is chosen where it pays."""

import pytest
import torch

from rlhf_ads import config
from rlhf_ads.errors import RlhfAdsError
from rlhf_ads.ppo.merged import MergedPolicy
from rlhf_ads.ppo.models import POLICY, build_actor_critic
from rlhf_ads.ppo.trainer import samples_merged

IDS = torch.tensor([[5, 17, 33, 8, 90, 41, 120, 64], [7, 7, 120, 64, 3, 250, 11, 12]])


def random_adapter(actor_critic) -> None:
    with torch.no_grad():
        for name, param in actor_critic.model.named_parameters():
            if f"lora_B.{POLICY}." in name:
                param.normal_(0.0, 0.05)


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits.float()


@pytest.mark.parametrize("four_bit", [False, True], ids=["fp32", "4bit"])
def test_the_merged_copy_computes_the_policy_and_follows_its_adapter(tiny_model_dir, four_bit):
    recipe = config.load(None, [f"model.base={tiny_model_dir}", "model.dtype=fp32",
                                f"model.load_in_4bit={str(four_bit).lower()}"])
    torch.manual_seed(0)
    actor_critic = build_actor_critic(recipe, None, None)
    random_adapter(actor_critic)
    base_before = {n: p.detach().numpy().tobytes() for n, p in actor_critic.model.named_parameters() if "lora_" not in n}
    actor_critic.merge_for_sampling(torch.float32)
    merged = actor_critic.sampler()
    assert not any("lora" in name for name, _ in merged.named_modules())
    assert torch.allclose(logits(merged), logits(actor_critic.model), atol=1e-4)
    random_adapter(actor_critic)  # the adapter trains on
    assert not torch.allclose(logits(merged), logits(actor_critic.model), atol=1e-4)
    for _ in range(3):
        merged = actor_critic.sampler()
    assert torch.allclose(logits(merged), logits(actor_critic.model), atol=1e-4)
    for name, param in actor_critic.model.named_parameters():  # nothing merged in place (4-bit: the same bytes)
        if name in base_before:
            assert param.detach().numpy().tobytes() == base_before[name], name


def test_the_merged_copy_shares_every_weight_but_the_adapted_ones(tiny_model_dir):
    recipe = config.load(None, [f"model.base={tiny_model_dir}", "model.dtype=fp32"])
    actor_critic = build_actor_critic(recipe, None, None)
    merged = MergedPolicy(actor_critic.model, POLICY, torch.float32).model
    base = actor_critic.model.get_base_model()
    assert merged.model.embed_tokens.weight is base.model.embed_tokens.weight
    assert merged.lm_head.weight is merged.model.embed_tokens.weight  # tied stays tied
    assert merged.model.layers[0].self_attn.q_proj.weight is not base.model.layers[0].self_attn.q_proj.base_layer.weight


@pytest.mark.parametrize("overrides, zero3, merged", [
    ([], False, True),
    (["model.load_in_4bit=true", "model.use_lora=true"], False, False),
    (["ppo.models=separate"], False, False),
    ([], True, False),
    (["ppo.sampling=adapters"], False, False),
    (["ppo.sampling=merged", "model.load_in_4bit=true", "model.use_lora=true"], False, True),
])
def test_auto_merges_unless_the_base_is_4bit_separate_or_zero3(overrides, zero3, merged):
    assert samples_merged(config.load(None, overrides), zero3) is merged


@pytest.mark.parametrize("overrides, zero3", [(["ppo.sampling=merged", "ppo.models=separate"], False),
                                              (["ppo.sampling=merged"], True)])
def test_merged_sampling_where_it_cannot_run_is_refused(overrides, zero3):
    with pytest.raises(RlhfAdsError, match="ppo.sampling: merged does not run with"):
        samples_merged(config.load(None, overrides), zero3)
