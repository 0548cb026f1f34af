"""Compute the golden PPO values with the reference implementation, trl==1.12.0 (its last PPOTrainer).

Run once in a scratch virtualenv, never in CI:

    python -m venv /tmp/trl112 && /tmp/trl112/bin/pip install torch==2.13.0 trl==1.12.0
    /tmp/trl112/bin/python tests/ppo/golden/make_golden.py > tests/ppo/golden/trl_1_12_0.json

masked_mean/var/whiten are imported from trl.experimental.ppo.ppo_trainer; the KL estimators,
the GAE loop and both clipped losses are inline in PPOTrainer.train() there (lines 773-847 of
trl 1.12.0), so they are restated below statement for statement.
"""

import json

import torch
import trl
from trl.experimental.ppo.ppo_trainer import masked_mean, masked_var, masked_whiten

torch.manual_seed(1234)
B, T = 3, 6
mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
values = torch.randn(B, T)
rewards = torch.randn(B, T)
logprobs = -torch.rand(B, T) * 3
ref_logprobs = -torch.rand(B, T) * 3
new_logprobs = logprobs + 0.3 * torch.randn(B, T)
new_values = values + 0.4 * torch.randn(B, T)
gamma, lam, cliprange, cliprange_value = 1.0, 0.95, 0.2, 0.2

# KL estimators (ppo_trainer.py:773-774)
logr = ref_logprobs - logprobs
k1 = -logr
k3 = (logr.exp() - 1) - logr

# GAE (ppo_trainer.py:787-796), on masked rewards and values
r = torch.masked_fill(rewards, ~mask, 0)
v = torch.masked_fill(values, ~mask, 0)
lastgaelam = 0
advantages_reversed = []
for t in reversed(range(T)):
    nextvalues = v[:, t + 1] if t < T - 1 else 0.0
    delta = r[:, t] + gamma * nextvalues - v[:, t]
    lastgaelam = delta + gamma * lam * lastgaelam
    advantages_reversed.append(lastgaelam)
advantages = torch.stack(advantages_reversed[::-1], axis=1)
returns = advantages + v

# Clipped losses (ppo_trainer.py:829-847)
vpredclipped = torch.clamp(new_values, v - cliprange_value, v + cliprange_value)
vf_losses1 = torch.square(new_values - returns)
vf_losses2 = torch.square(vpredclipped - returns)
vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
vf_clipfrac = masked_mean((vf_losses2 > vf_losses1).float(), mask)
white_adv = masked_whiten(advantages, mask)
ratio = torch.exp(new_logprobs - logprobs)
pg_losses = -white_adv * ratio
pg_losses2 = -white_adv * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
pg_clipfrac = masked_mean((pg_losses2 > pg_losses).float(), mask)
# approx-KL (ppo_trainer.py:856-857): TRL fills padded log-probs with INVALID_LOGPROB in both old and new,
# so their difference is 0 there, and averages over every position, padded ones included.
INVALID_LOGPROB = 1.0
old_filled = torch.masked_fill(logprobs, ~mask, INVALID_LOGPROB)
new_filled = torch.masked_fill(new_logprobs, ~mask, INVALID_LOGPROB)
approxkl = 0.5 * ((new_filled - old_filled) ** 2).mean()


def out(x):
    return x.tolist()


print(json.dumps({
    "trl_version": trl.__version__, "gamma": gamma, "lam": lam, "cliprange": cliprange,
    "inputs": {"mask": out(mask), "values": out(values), "rewards": out(rewards), "logprobs": out(logprobs),
               "ref_logprobs": out(ref_logprobs), "new_logprobs": out(new_logprobs), "new_values": out(new_values)},
    "masked_mean": masked_mean(values, mask).item(), "masked_var": masked_var(values, mask).item(),
    "whiten": out(masked_whiten(values, mask)), "whiten_no_shift": out(masked_whiten(values, mask, shift_mean=False)),
    "k1": out(k1), "k3": out(k3), "advantages": out(advantages), "returns": out(returns),
    "whitened_advantages": out(white_adv), "vf_loss": vf_loss.item(), "vf_clipfrac": vf_clipfrac.item(),
    "pg_loss": pg_loss.item(), "pg_clipfrac": pg_clipfrac.item(), "approxkl": approxkl.item(),
}, indent=1))
