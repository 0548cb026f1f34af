"""Atomic checkpoints: written into a staging folder beside the target, then renamed, so a crash
never leaves a half checkpoint; only the newest `keep` are kept. Also the RNG states they carry."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

PREFIX = "checkpoint-"
STAGING = ".partial-staging"
ADAPTER_FILE = "adapter_model.safetensors"


def staging_folder(root: Path) -> Path:
    """The temp folder in which every rank of a distributed run writes one checkpoint before the main
    process renames it (a fixed name, so all ranks find it; `remove_partials` clears one a killed run left)."""
    return root / STAGING


def publish(staging: Path, target: Path) -> None:
    """Rename a fully written folder to its final name (replacing an older one of that name)."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints (keep <= 0 keeps all)."""
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def remove_partials(root: Path) -> None:
    """Delete temp folders a killed run left mid-write (they were never renamed, so never counted)."""
    for stale in root.glob(".partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under root, oldest first (partial temp folders are ignored)."""
    found = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def newest(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def rng_state() -> dict:
    """Every RNG a run draws from."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def saved_weights(folder: Path) -> tuple[dict[str, torch.Tensor], bool] | None:
    """The weights a saved model folder or Trainer checkpoint holds, and whether they are a PEFT adapter (LoRA
    matrices and modules_to_save such as a score head) rather than the full model (model.safetensors or its
    shards); None when it holds neither."""
    if (folder / ADAPTER_FILE).is_file():
        return load_file(folder / ADAPTER_FILE), True
    shards = sorted(folder.glob("model*.safetensors"))
    if not shards:
        return None
    weights: dict[str, torch.Tensor] = {}
    for shard in shards:
        weights.update(load_file(shard))
    return weights, False
