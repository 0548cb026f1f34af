"""How the PPO loop turns losses into updates, in one of two ways with the same surface:

- `LocalOptimization`: one process, or plain data parallel (`accelerate launch` without DeepSpeed):
  gradients are all-reduced explicitly before each optimizer step (ppo/distributed.py).
- `DeepSpeedOptimization`: `accelerate launch` with a DeepSpeed config. The trainable adapters and value
  head train in a DeepSpeed engine: ZeRO-1/2 shard their optimizer state (and gradients) over the ranks;
  ZeRO-3 shards every weight, the frozen base too, and gathers a layer's weights for each forward pass.
  A rollout gathers all weights once and samples with the per-layer hooks off (`generation()`): ZeRO-3
  would otherwise gather and release every layer for every new token.

The loop calls `train_policy(flag)` (off during the critic warm-up), `forward(compute)` for passes that
may need ZeRO-3's hooks, `backward(loss)` for each loss of a micro-batch, `end_micro_batch()`, `step()`
at the end of a minibatch, `save/load` in checkpoints, and
`full_weights()` around saving adapters (under ZeRO-3 each rank holds only a shard of each tensor).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, TypeVar

import torch

from rlhf_ads.errors import ConfigError, RlhfAdsError
from rlhf_ads.ppo import distributed as dist
from rlhf_ads.ppo.models import POLICY
from rlhf_ads.private_apis import restore_zero3_module_hooks

T = TypeVar("T")
ZERO_FOLDER, ZERO_TAG = "zero", "state"


def non_finite(grad_norm: float) -> RlhfAdsError:
    return RlhfAdsError(f"non-finite gradient norm ({grad_norm}) in the PPO update; lower ppo.training.learning_rate or "
                        "check the rewards")


class LocalOptimization:
    """AdamW on this process's parameters; gradients averaged over ranks by an explicit all-reduce."""

    restores_weights = False  # a checkpoint's adapters are loaded by the caller
    keeps_graphs = True  # a forward's graph may wait across other passes before its backward (ppo/update.py: KeptPass)

    def __init__(self, optimizer: torch.optim.Optimizer, max_grad_norm: float, grad_accum: int):
        self.optimizer, self.max_grad_norm, self.grad_accum = optimizer, max_grad_norm, grad_accum
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def forward(self, compute: Callable[[], T]) -> T:
        return compute()

    def generation(self):
        return contextlib.nullcontext()

    def full_weights(self):
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """One loss of a micro-batch; its gradient adds to the minibatch's (mean over micro-batches)."""
        (loss / self.grad_accum).backward()

    def end_micro_batch(self) -> None:
        pass

    def train_policy(self, trainable: bool) -> None:
        freeze_policy(self.optimizer, not trainable)

    def step(self) -> float:
        """Average over ranks, clip, step. Returns the gradient norm before clipping."""
        dist.average_gradients(self.params)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm))
        if not torch.isfinite(torch.tensor(grad_norm)):
            raise non_finite(grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def save(self, folder: Path) -> dict:
        """What goes into the checkpoint's trainer.pt."""
        return {"optimizer": self.optimizer.state_dict()}

    def load(self, folder: Path, saved: dict) -> None:
        self.optimizer.load_state_dict(saved["optimizer"])


class FreezableAdamW(torch.optim.AdamW):
    """AdamW over named parameter groups ({"params": ..., "role": POLICY | VALUE}); a group marked
    `frozen` is skipped, its parameters and state untouched. (Skipping by 'no gradient' does not work
    under ZeRO: the optimizer there sees one flat tensor per group, zero where no gradient flowed.)"""

    @torch.no_grad()
    def step(self, closure=None):
        every_group = self.param_groups
        self.param_groups = [group for group in every_group if not group.get("frozen")]
        try:
            return super().step(closure)
        finally:
            self.param_groups = every_group


def freeze_policy(optimizer: torch.optim.Optimizer, frozen: bool) -> None:
    """Mark the policy's parameter group frozen (the critic warm-up) or trainable."""
    for group in optimizer.param_groups:
        if group.get("role") == POLICY:
            group["frozen"] = frozen


class EnginePasses(torch.nn.Module):
    """The DeepSpeed engine's module: it holds the PEFT model and the value head (so ZeRO manages their
    weights) and its forward runs whatever pass the PPO loop hands it, so each pass enters through the
    engine (ZeRO-3 starts its per-forward bookkeeping there)."""

    def __init__(self, model: torch.nn.Module, value_head: torch.nn.Module):
        super().__init__()
        self.model, self.value_head = model, value_head
        self.config = model.config  # accelerate sizes ZeRO-3's 'auto' buckets from hidden_size

    def forward(self, compute: Callable[[], T]) -> T:
        return compute()


class DeepSpeedOptimization:
    """The trainable weights in a DeepSpeed engine built by `accelerator.prepare`; the engine clips at
    ppo.training.max_grad_norm and applies the optimizer at the end of each minibatch."""

    restores_weights = True  # the engine checkpoint holds the trainable weights
    keeps_graphs = False  # the engine tracks each forward up to its backward

    def __init__(self, accelerator, model: torch.nn.Module, value_head: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, *, micro_batch_size: int, grad_accum: int, max_grad_norm: float):
        config = accelerator.state.deepspeed_plugin.deepspeed_config
        config.update(train_micro_batch_size_per_gpu=micro_batch_size, gradient_accumulation_steps=grad_accum,
                      train_batch_size=micro_batch_size * grad_accum * accelerator.num_processes,
                      gradient_clipping=max_grad_norm)
        config.setdefault("zero_force_ds_cpu_optimizer", False)  # our AdamW, also with optimizer offload
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        for param in self.params:  # ZeRO keeps only what requires grad now; PEFT turns the inactive adapter's off
            param.requires_grad_(True)
        self.torch_optimizer = optimizer  # ZeRO steps it on flat partitions, one per parameter group
        self.engine, self.optimizer = accelerator.prepare(EnginePasses(model, value_head), optimizer)
        self._pending: list[torch.Tensor] = []
        self.zero3 = self.engine.zero_optimization_stage() == 3

    def forward(self, compute: Callable[[], T]) -> T:
        return self.engine(compute)

    @contextlib.contextmanager
    def generation(self):
        """ZeRO-3: every weight gathered once for the whole rollout, the per-layer hooks off meanwhile."""
        if not self.zero3:
            yield
            return
        import deepspeed

        offload = self.engine.optimizer.parameter_offload
        with deepspeed.zero.GatheredParameters(list(self.engine.module.parameters())):
            for hook in offload.forward_hooks + offload.backward_hooks:
                hook.remove()
            offload.forward_hooks, offload.backward_hooks = [], []
            try:
                yield
            finally:  # the hooks back, as the engine registered them
                restore_zero3_module_hooks(offload)

    def full_weights(self):
        """Whole trainable tensors on every rank (ZeRO-3 gathers them; a collective: call on all ranks)."""
        if not self.zero3:
            return contextlib.nullcontext()
        import deepspeed

        return deepspeed.zero.GatheredParameters(self.params)

    def backward(self, loss: torch.Tensor) -> None:
        self._pending.append(loss)

    def end_micro_batch(self) -> None:
        """One backward through the micro-batch's summed losses (DeepSpeed reduces each gradient once per
        backward and divides by gradient_accumulation_steps itself), then the engine's step: it counts
        micro-batches and applies the optimizer at its accumulation boundary. Switching adapters turned the
        inactive adapter's requires_grad off (PEFT), and autograd skips a leaf that no longer requires
        grad, so the flags go back on first. (The engine is called directly: accelerator.backward would
        mark every call a boundary unless accelerate's own accumulation context were used.)"""
        for param in self.params:
            param.requires_grad_(True)
        self.engine.backward(torch.stack(self._pending).sum())
        self.engine.step()
        self._pending = []

    def train_policy(self, trainable: bool) -> None:
        freeze_policy(self.torch_optimizer, not trainable)

    def step(self) -> float:
        """The engine stepped at the boundary already; its gradient norm before clipping."""
        grad_norm = self.engine.get_global_grad_norm()
        grad_norm = float(grad_norm) if grad_norm is not None else float("nan")
        if not torch.isfinite(torch.tensor(grad_norm)):
            raise non_finite(grad_norm)
        return grad_norm

    def save(self, folder: Path) -> dict:
        """Every rank writes its shard of the optimizer state (and, under ZeRO-3, of the weights) to
        <folder>/zero; the frozen base is left out. A collective."""
        self.engine.save_checkpoint(str(folder / ZERO_FOLDER), tag=ZERO_TAG, save_latest=False,
                                    exclude_frozen_parameters=True)
        return {}

    def load(self, folder: Path, saved: dict) -> None:
        self.engine.load_checkpoint(str(folder / ZERO_FOLDER), tag=ZERO_TAG, load_module_strict=False,
                                    load_lr_scheduler_states=False)


def make_optimization(accelerator, actor_critic, cfg):
    """FreezableAdamW over the policy and value parameter groups, in a DeepSpeedOptimization under an
    `accelerate launch` DeepSpeed config, else in a LocalOptimization."""
    from accelerate.utils import DistributedType

    training = cfg.training
    optimizer = FreezableAdamW([{"params": params, "role": role}
                                for role, params in actor_critic.trainable_parameters().items()],
                               lr=training.learning_rate, weight_decay=training.weight_decay)
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return LocalOptimization(optimizer, training.max_grad_norm, training.grad_accum)
    if cfg.models != "shared":
        raise ConfigError(f"ppo.models: {cfg.models} does not run under DeepSpeed; use ppo.models: shared "
                          "(one base with policy, reference and value adapters), which ZeRO shards")
    return DeepSpeedOptimization(accelerator, actor_critic.model, actor_critic.value_head, optimizer,
                                 micro_batch_size=cfg.micro_batch_size, grad_accum=training.grad_accum,
                                 max_grad_norm=training.max_grad_norm)
