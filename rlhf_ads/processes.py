"""Process facts every layer uses: which rank this is, how many there are, whether this one writes files,
waiting for the others, and the collective backend for DeepSpeed on CPUs. The bottom floor: it imports
nothing of ours, and no other module asks torch.distributed or the launcher's variables these questions.

Outside a process group (one process, or before `Accelerator()` joins the group) the world is 1 and the
rank is the launcher's RANK variable (0 when unset), so "main process only" logic is right from the start.
"""

from __future__ import annotations

import os

import torch.distributed as torch_dist


def _in_group() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def world_size() -> int:
    """Processes in the group (1 without one)."""
    return torch_dist.get_world_size() if _in_group() else 1


def rank() -> int:
    """This process's global rank: the group's, else the launcher's RANK variable, else 0."""
    return torch_dist.get_rank() if _in_group() else int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Whether this process writes files, logs and trackers."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a group)."""
    if _in_group() and world_size() > 1:
        torch_dist.barrier()


def leave_group() -> None:
    """Destroy the process group, if any, while the interpreter is still whole: left to interpreter
    shutdown, gloo's worker threads can outlive Python and abort the process ("terminate called without an
    active exception", SIGABRT) after a run that succeeded. Each launched entry point calls it on the way out."""
    if _in_group():
        torch_dist.destroy_process_group()


def deepspeed_cpu_backend() -> str | None:
    """DeepSpeed's collective backend (gloo, or ccl with oneCCL) when `accelerate launch` runs DeepSpeed
    on CPUs (DS_ACCELERATOR=cpu), else None. accelerate only reads the world size and rank from a group
    it is given a backend for: without one, every rank calls itself rank 0 of 1 and ZeRO's batch check fails."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true":
        return None
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    return accelerator.communication_backend_name() if accelerator.device_name() == "cpu" else None
