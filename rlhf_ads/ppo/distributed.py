"""Data parallel PPO with plain collectives: every rank rolls out its own prompts, gradients are
averaged before each optimizer step, metrics are averaged for logging. With one process (or no
process group) every function here is the identity, so single-process runs are unchanged.

Why not `accelerator.prepare(model)` (DDP): one PEFT model carries the policy and value adapters and
each micro-batch runs two forwards with different adapters active; DDP's one-forward-one-backward
bookkeeping does not fit that, while an explicit gradient all-reduce does.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from rlhf_ads.processes import world_size


def broadcast_parameters(params: list[torch.Tensor], src: int = 0) -> None:
    """Copy rank `src`'s values into every rank's parameters (so all ranks start equal)."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for param in params:
            dist.broadcast(param.data, src)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """All-reduce the gradients of `params` to their mean over ranks, as one flat buffer.
    A parameter with no gradient counts as zeros (and gets them) so every rank reduces the same layout."""
    if world_size() == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    offset = 0
    for param, grad in zip(params, grads):
        n = grad.numel()
        param.grad = flat[offset:offset + n].view_as(grad).to(grad.dtype)
        offset += n


def average_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The mean of each numeric metric over the ranks that report it (keys may differ between ranks);
    values equal on every rank (the step) are kept as they are."""
    if world_size() == 1:
        return metrics
    gathered: list[dict] = [None] * world_size()  # type: ignore[list-item]
    dist.all_gather_object(gathered, metrics)
    merged = {}
    for key in dict.fromkeys(k for m in gathered for k in m):
        values = [m[key] for m in gathered if key in m]
        numeric = all(isinstance(v, (int, float)) for v in values) and any(v != values[0] for v in values)
        merged[key] = sum(values) / len(values) if numeric else values[0]
    return merged


def gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if world_size() == 1:
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
