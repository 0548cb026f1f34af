"""Atomic checkpoints: written into a staging folder beside the target, then renamed, so a crash
never leaves a half checkpoint; only the newest `keep` are kept. Also the RNG states they carry."""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from rlhf_ads.errors import RlhfAdsError

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


def newest(root: Path, marker: str | None = None) -> Path | None:
    """The newest complete checkpoint under root (holding the file `marker`, when given), or None."""
    found = [p for p in list_checkpoints(root) if marker is None or (p / marker).is_file()]
    return found[-1] if found else None


def rng_state() -> dict:
    """Every RNG a run draws from, as plain values and tensors (what `load_state` reads without unpickling)."""
    numpy_state = np.random.get_state(legacy=False)
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": dict(numpy_state, state=dict(numpy_state["state"],
                                                   key=torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(dict(numpy_state, state=dict(numpy_state["state"],
                                                     key=numpy_state["state"]["key"].numpy().astype(np.uint32))))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, state: dict) -> None:
    """A trainer state (tensors, numbers, strings, lists, tuples and dicts of them) to `path`."""
    torch.save(state, path)


def load_state(path: Path) -> dict:
    """The inverse of `save_state`, with pickling refused: a checkpoint folder from elsewhere cannot run code."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RlhfAdsError(f"{path} holds more than tensors and plain values, so it is not loaded (it could run "
                           f"code); resume from a checkpoint this version wrote. {str(exc).splitlines()[0]}") from None


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
