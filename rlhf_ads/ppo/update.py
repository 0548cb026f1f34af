"""The PPO update and the forward passes it shares with the old statistics.

The update's order (update_plan) is drawn before the old statistics so that its first micro-batch can run
its training forward while they are taken (KeptPass): until that micro-batch's first optimizer step the
weights have not changed, so one forward gives its old log-probs and values and the graph the update
backpropagates through.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf_ads.ppo.losses import masked_mean, policy_loss, value_loss
from rlhf_ads.ppo.models import POLICY, VALUE, ActorCritic
from rlhf_ads.ppo.rollout import response_logprobs, response_stats, response_values


def update_plan(cfg) -> list[list[list[torch.Tensor]]]:
    """The update's order, drawn before the old statistics: for each of ppo_epochs a fresh shuffle of the
    batch's rows, cut into minibatches of mini_batch_size and those into micro-batches (row indices)."""
    return [[minibatch.split(cfg.micro_batch_size)
             for minibatch in torch.randperm(cfg.batch_size).split(cfg.mini_batch_size)]
            for _ in range(cfg.ppo_epochs)]


@dataclass
class KeptPass:
    """The update's first micro-batch forward, run with gradients while the old statistics are taken: until
    that micro-batch's first update nothing has changed, so its detached outputs are the micro-batch's old
    log-probs and values, and the update backpropagates through its graph instead of running the forward
    again. index: (b,) rows of the rollout; logprobs, entropy: (b, R); values: (b, R), or None with a value
    adapter."""

    index: torch.Tensor
    logprobs: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor | None


def keep_first_pass(cfg, actor_critic: ActorCritic, optimization, rollout, plan) -> KeptPass | None:
    """The first micro-batch's training forward (KeptPass), or None where a graph cannot wait across the other
    passes: under DeepSpeed, whose engine tracks each forward up to its backward."""
    if not optimization.keeps_graphs:
        return None
    index = plan[0][0][0]
    return KeptPass(index, *policy_pass(cfg, actor_critic, optimization, rollout.select(index), with_entropy=True))


def old_policy_stats(cfg, actor_critic: ActorCritic, optimization, rollout,
                     kept: KeptPass | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Old log-probs (B, R) and values (B, R), without gradients: the kept pass's rows from it, the others from
    one policy pass (which gives the values too with a shared critic; else the value adapter's pass)."""
    logprobs, values = _policy_stats(cfg, actor_critic, optimization, rollout, kept)
    return logprobs, values if values is not None else value_pass(cfg, actor_critic, optimization, rollout)


def _policy_stats(cfg, actor_critic: ActorCritic, optimization, rollout, kept: KeptPass | None):
    """old_policy_stats from the policy's passes alone: values None with a value adapter."""
    if kept is None:
        logprobs, _, values = policy_pass(cfg, actor_critic, optimization, rollout)
        return logprobs, values
    rest = torch.ones(len(rollout.texts), dtype=torch.bool)
    rest[kept.index] = False
    rest = rest.nonzero().squeeze(1)
    outputs = [kept.logprobs.detach(), None if kept.values is None else kept.values.detach()]
    if len(rest):
        rest_logprobs, _, rest_values = policy_pass(cfg, actor_critic, optimization, rollout.select(rest))
        outputs = [_rows_in_order(kept.index, part, rest, rest_part) for part, rest_part in
                   zip(outputs, (rest_logprobs, rest_values))]
    return tuple(outputs)


def _rows_in_order(first_index: torch.Tensor, first: torch.Tensor | None, rest_index: torch.Tensor,
                   rest: torch.Tensor | None) -> torch.Tensor | None:
    """(B, R) from two row subsets (b1, R) and (b2, R) placed at their indices; None when the parts are."""
    if first is None:
        return None
    whole = first.new_empty((len(first_index) + len(rest_index), first.shape[1]))
    whole[first_index], whole[rest_index] = first, rest
    return whole


def run_update(cfg, actor_critic: ActorCritic, optimization, rollout, old_logprobs, old_values, advantages, returns,
               train_policy: bool = True, plan=None, kept: KeptPass | None = None) -> dict:
    """ppo_epochs passes of clipped policy and value updates over shuffled minibatches (`plan`, drawn here when
    not given); each minibatch is `grad_accum` micro-batches whose gradients add up (and are averaged over
    ranks) before one optimizer step. `kept`: the first micro-batch's forward, run already. With train_policy
    False only the value function learns: the policy gets no gradient, and its parameters and optimizer state
    stay as they are."""
    stats: dict[str, list[float]] = {}
    optimization.train_policy(train_policy)
    for epoch in plan if plan is not None else update_plan(cfg):
        for minibatch in epoch:
            for index in minibatch:
                mb = rollout.select(index)
                mask = mb.response_mask
                new_values, pg_loss, logged = None, 0.0, {}
                if train_policy:
                    if kept is not None:  # the first micro-batch: its forward ran with the old statistics
                        actor_critic.use(POLICY)  # a value adapter's pass since turned requires_grad off
                        new_logprobs, entropy, new_values, kept = kept.logprobs, kept.entropy, kept.values, None
                    else:
                        new_logprobs, entropy, new_values = policy_pass(cfg, actor_critic, optimization, mb,
                                                                        with_entropy=True)
                    pg_loss, pg_stats = policy_loss(new_logprobs, old_logprobs[index], advantages[index], mask,
                                                    cfg.cliprange)
                    mean_entropy = masked_mean(entropy, mask)
                    logged = {"ppo/policy_loss": pg_loss, "ppo/policy_clipfrac": pg_stats["clipfrac"],
                              "ppo/approx_kl": pg_stats["approxkl"], "ppo/entropy": mean_entropy}
                    if cfg.entropy_coef > 0:  # the bonus: maximize entropy beside the clipped surrogate
                        pg_loss = pg_loss - cfg.entropy_coef * mean_entropy
                if new_values is None:  # a value adapter: the policy's graph goes before the value's pass
                    if train_policy:
                        optimization.backward(pg_loss)
                        pg_loss = 0.0
                    new_values = value_pass(cfg, actor_critic, optimization, mb)
                vf_loss, vf_stats = value_loss(new_values, old_values[index], returns[index], mask, cfg.cliprange_value)
                optimization.backward(pg_loss + cfg.vf_coef * vf_loss)
                optimization.end_micro_batch()
                logged.update({"ppo/value_loss": vf_loss, "ppo/value_clipfrac": vf_stats["clipfrac"]})
                for key, value in logged.items():
                    stats.setdefault(key, []).append(float(value.detach()))
            stats.setdefault("ppo/grad_norm", []).append(optimization.step())
    return {k: sum(v) / len(v) for k, v in stats.items()}


def policy_pass(cfg, actor_critic: ActorCritic, optimization, rollout, *, with_entropy: bool = False):
    """The policy's forward over `rollout`: (log-probs (B, R), entropy (B, R) or None, values (B, R) or None);
    with a shared critic the values come from the same pass."""
    actor_critic.use(POLICY)
    if actor_critic.shared_critic:
        logprobs, values, *entropy = optimization.forward(lambda: response_stats(
            actor_critic.trunk, actor_critic.lm_head, actor_critic.value_head, rollout, cfg.temperature,
            with_entropy=with_entropy))
        return logprobs, (entropy or [None])[0], values
    out = optimization.forward(
        lambda: response_logprobs(actor_critic.model, rollout, cfg.temperature, with_entropy=with_entropy))
    return (*out, None) if with_entropy else (out, None, None)


def value_pass(cfg, actor_critic: ActorCritic, optimization, rollout) -> torch.Tensor:
    """Values (B, R) from the critic alone: the value adapter's pass, or with a shared critic the value head
    on the policy's trunk run without gradients (the critic warm-up)."""
    if actor_critic.shared_critic:
        actor_critic.use(POLICY)
        return optimization.forward(lambda: response_stats(
            actor_critic.trunk, actor_critic.lm_head, actor_critic.value_head, rollout, cfg.temperature,
            value_only=True))[1]
    actor_critic.use(VALUE)
    return optimization.forward(lambda: response_values(actor_critic.trunk, actor_critic.value_head, rollout))
