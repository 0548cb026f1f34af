"""PPO math: hand-checkable cases and golden values from trl==1.12.0 (see golden/make_golden.py)."""

import json
import math
from pathlib import Path

import pytest
import torch

from rlhf_ads.ppo.kl import AdaptiveKLController, FixedKLController, kl_estimate
from rlhf_ads.ppo.losses import gae, masked_mean, masked_var, masked_whiten, policy_loss, token_rewards, value_loss

GOLDEN = json.loads((Path(__file__).parent / "golden" / "trl_1_12_0.json").read_text())
T = {k: torch.tensor(v) for k, v in GOLDEN["inputs"].items()}
MASK = T["mask"].bool()


def close(actual, expected):
    assert torch.allclose(torch.as_tensor(actual, dtype=torch.float32), torch.tensor(expected, dtype=torch.float32),
                          atol=1e-5), (actual, expected)


def test_golden_masked_statistics_and_whitening():
    close(masked_mean(T["values"], MASK), GOLDEN["masked_mean"])
    close(masked_var(T["values"], MASK), GOLDEN["masked_var"])
    close(masked_whiten(T["values"], MASK), GOLDEN["whiten"])
    close(masked_whiten(T["values"], MASK, shift_mean=False), GOLDEN["whiten_no_shift"])


def test_golden_kl_estimators():
    close(kl_estimate(T["logprobs"], T["ref_logprobs"], "k1"), GOLDEN["k1"])
    close(kl_estimate(T["logprobs"], T["ref_logprobs"], "k3"), GOLDEN["k3"])


def test_golden_gae_and_losses():
    advantages, returns = gae(T["rewards"], T["values"], MASK, GOLDEN["gamma"], GOLDEN["lam"])
    close(advantages, GOLDEN["advantages"])
    close(returns, GOLDEN["returns"])
    white = masked_whiten(advantages, MASK)
    close(white, GOLDEN["whitened_advantages"])
    old_values = T["values"] * MASK
    v_loss, v_stats = value_loss(T["new_values"], old_values, returns, MASK, GOLDEN["cliprange"])
    close(v_loss, GOLDEN["vf_loss"])
    close(v_stats["clipfrac"], GOLDEN["vf_clipfrac"])
    p_loss, p_stats = policy_loss(T["new_logprobs"], T["logprobs"], white, MASK, GOLDEN["cliprange"])
    close(p_loss, GOLDEN["pg_loss"])
    close(p_stats["clipfrac"], GOLDEN["pg_clipfrac"])
    # We average approx-KL over valid tokens; TRL over all positions (padded ones contribute 0).
    close(p_stats["approxkl"] * MASK.sum() / MASK.numel(), GOLDEN["approxkl"])


def test_gae_by_hand():
    # one sequence, 2 valid steps: r = [0, 1], v = [0.5, 0.2], gamma = 1, lam = 0.5
    adv, ret = gae(torch.tensor([[0.0, 1.0, 9.0]]), torch.tensor([[0.5, 0.2, 9.0]]), torch.tensor([[1, 1, 0]]).bool(),
                   gamma=1.0, lam=0.5)
    # delta1 = 1 - 0.2 = 0.8; delta0 = 0 + 0.2 - 0.5 = -0.3; A0 = -0.3 + 0.5 * 0.8 = 0.1
    close(adv, [[0.1, 0.8, 0.0]])
    close(ret, [[0.6, 1.0, 0.0]])


def test_whitening_keeps_mean_when_asked_and_needs_two_values():
    values, mask = torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]]).bool()
    close(masked_whiten(values, mask)[0, :2], [-1 / math.sqrt(2), 1 / math.sqrt(2)])  # unbiased var = 2
    close(masked_whiten(values, mask, shift_mean=False)[0, :2], [2 - 1 / math.sqrt(2), 2 + 1 / math.sqrt(2)])
    with pytest.raises(ValueError, match="at least 2"):
        masked_var(values, torch.tensor([[1, 0, 0]]).bool())


def test_losses_by_hand():
    mask = torch.ones(1, 2, dtype=torch.bool)
    adv = torch.tensor([[1.0, -1.0]])
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    loss, stats = policy_loss(new, old, adv, mask, clip_range=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(0.5, 0.8) = 0.8 (clipped) -> mean -0.2
    close(loss, -0.2)
    close(stats["clipfrac"], 1.0)
    v_loss, v_stats = value_loss(torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2), torch.tensor([[1.0, 0.1]]), mask, 0.2)
    # token 0: max((1-1)^2, (0.2-1)^2) = 0.64; token 1: max(0.01, 0.01) = 0.01 -> 0.5 * mean = 0.1625
    close(v_loss, 0.1625)
    close(v_stats["clipfrac"], 0.5)


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    close(kl_estimate(logp, ref, "k1"), [[math.log(2)]])
    close(kl_estimate(logp, ref, "k3"), [[(0.5 - 1) - math.log(0.5)]])
    assert (kl_estimate(torch.randn(4, 5), torch.randn(4, 5), "k3") >= 0).all()
    with pytest.raises(ValueError, match="k1 or k3"):
        kl_estimate(logp, ref, "k2")


def test_kl_controllers():
    fixed = FixedKLController(0.05)
    fixed.update(100.0, 8)
    assert fixed.value == 0.05
    adaptive = AdaptiveKLController(0.15, target=6.0, horizon=10000)
    adaptive.update(12.0, 1000)  # error clipped to +0.2: beta *= 1.02
    assert adaptive.value == pytest.approx(0.153)
    adaptive.update(3.0, 1000)  # error -0.5 clipped to -0.2: beta *= 0.98
    assert adaptive.value == pytest.approx(0.153 * 0.98)
    restored = AdaptiveKLController(1.0, 6.0, 10000)
    restored.load_state_dict(adaptive.state_dict())
    assert restored.value == adaptive.value


def test_token_rewards_put_the_score_on_the_last_response_token():
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    rewards = token_rewards(kl * mask, torch.tensor([1.0, 2.0]), mask, kl_coef=0.5)
    close(rewards, [[-0.05, -0.1, -0.15 + 1.0], [-0.2, -0.25 + 2.0, 0.0]])


def test_whitened_token_rewards_keep_their_mean_and_have_unit_variance():
    kl = torch.rand(4, 6)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[2, 4:] = False
    plain = token_rewards(kl * mask, torch.arange(4.0), mask, kl_coef=0.1)
    whitened = token_rewards(kl * mask, torch.arange(4.0), mask, kl_coef=0.1, whiten=True)
    close(masked_mean(whitened, mask), masked_mean(plain, mask))
    close(masked_var(whitened, mask), 1.0)
    assert (whitened[~mask] == 0).all()
