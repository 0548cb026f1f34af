"""Latest weight averaging: after training, the model takes the uniform average of the weights held by its
newest N checkpoints (the newest is the final step). It is a cheap ensemble of one run's last stretch
(Kaddour, 2022, "Stop Wasting My Time! Saving Days of ImageNet and BERT Training with Latest Weight
Averaging", arXiv:2209.14981). The average is read from the checkpoint files, so it survives a resume."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from rlhf_ads.checkpoint import PREFIX, saved_weights
from rlhf_ads.errors import ConfigError

log = logging.getLogger(__name__)


def mean_weights(folders: list[Path]) -> tuple[dict[str, torch.Tensor], bool]:
    """Element-wise mean, in fp32, of the weights in `folders` (each tensor keeps its saved shape). LoRA's A and
    B are averaged apart: their product is close to the mean of the products only while the checkpoints are."""
    total: dict[str, torch.Tensor] = {}
    is_adapter = False
    for folder in folders:
        saved = saved_weights(folder)
        if saved is None:
            raise ConfigError(f"{folder} holds no safetensors weights to average (a DeepSpeed ZeRO-3 checkpoint "
                              "keeps only its shards unless it gathers 16-bit weights on save): "
                              "set training.average_checkpoints=1")
        weights, is_adapter = saved
        if total and weights.keys() != total.keys():
            raise ConfigError(f"{folder} holds other weights than {folders[0]}: checkpoints of different runs "
                              "cannot be averaged (clear the stage's checkpoints/ folder)")
        for name, tensor in weights.items():
            total[name] = total[name] + tensor.float() if name in total else tensor.float().clone()
    return {name: tensor / len(folders) for name, tensor in total.items()}, is_adapter


def saved_steps(final_step: int, save_steps: int, count: int) -> list[int]:
    """The steps of the newest `count` checkpoints a run of `final_step` steps saved every `save_steps` (and
    at its end), oldest first."""
    steps = sorted(set(range(save_steps, final_step + 1, save_steps)) | {final_step})
    return steps[-count:]


def average_newest_checkpoints(model, checkpoints_dir: Path, count: int, final_step: int,
                               save_steps: int) -> list[Path]:
    """Load into `model` (in place, keeping each parameter's dtype) the mean of the weights in the newest
    `count` checkpoints this run saved under checkpoints_dir (by their step names, so a stale checkpoint of an
    earlier, longer run is never mixed in); returns those folders, oldest first."""
    folders = [checkpoints_dir / f"{PREFIX}{step}" for step in saved_steps(final_step, save_steps, count)]
    missing = [f.name for f in folders if not f.is_dir()]
    if len(folders) < count or missing:
        raise ConfigError(f"training.average_checkpoints={count} needs the run's newest {count} checkpoints under "
                          f"{checkpoints_dir}; {len(folders) - len(missing)} are there (missing: "
                          f"{', '.join(missing) or 'none; the run saved fewer'}): "
                          "lower save_steps or average_checkpoints")
    averaged, is_adapter = mean_weights(folders)
    if is_adapter:
        from peft import set_peft_model_state_dict

        unexpected = set_peft_model_state_dict(model, averaged).unexpected_keys
    else:
        unexpected = model.load_state_dict(averaged, strict=False).unexpected_keys
    if unexpected:
        raise ConfigError(f"the checkpoints under {checkpoints_dir} hold weights this model lacks "
                          f"({sorted(unexpected)[:3]}...): clear that folder")
    log.info("model weights: the mean of %s", ", ".join(f.name for f in folders))
    return folders
