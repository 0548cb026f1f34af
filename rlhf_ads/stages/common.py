"""What the training stages share: trainer arguments from a recipe, resume, atomic checkpoints,
tracking (rlhf_ads.tracking), metrics files."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import torch
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.utils import is_torch_bf16_gpu_available

from rlhf_ads import checkpoint
from rlhf_ads.config import Recipe
from rlhf_ads.config_common import HFTrainingSettings, TrainerSettings
from rlhf_ads.config_schema import to_dict
from rlhf_ads.errors import ConfigError
from rlhf_ads.model_card import write_model_card
from rlhf_ads.modeling import resolve_dtype
from rlhf_ads.processes import deepspeed_cpu_backend, is_main_process
from rlhf_ads.stages.atomic_checkpoints import clear_staging, make_checkpoints_atomic
from rlhf_ads.stages.weight_averaging import average_newest_checkpoints
from rlhf_ads.storage import atomic_write_text
from rlhf_ads.tracking import (JsonlLogCallback, RunTracker, dump_parameter_fingerprint, run_name, stage_artifact_files,
                               trainer_report_to)

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"


def trainer_args(args_class, training: HFTrainingSettings, out_dir: Path, recipe: Recipe, **extra) -> Any:
    """A transformers/TRL `*Config` from the recipe's training settings; checkpoints go to out_dir/checkpoints.
    Epochs and row batches come from `TrainerSettings` (sft, reward, dpo); the online stages (grpo, rloo) give
    their steps and batches in `extra`, which sets or replaces any argument."""
    report_to = [b for b in trainer_report_to(training.report_to) if b != "tensorboard"]  # ours: see add_tracking
    bf16 = resolve_dtype(recipe.model.dtype) == "bf16" or training.mixed_precision == "bf16"
    args = dict(
        output_dir=str(out_dir / CHECKPOINTS), learning_rate=training.learning_rate,
        gradient_accumulation_steps=training.grad_accum,
        warmup_steps=training.warmup_ratio,  # transformers 5: a float below 1 is that share of the steps
        weight_decay=training.weight_decay, max_grad_norm=training.max_grad_norm,
        lr_scheduler_type="linear", logging_steps=training.logging_steps,
        eval_strategy="no",  # each stage evaluates its held-out rows after training
        save_strategy="steps", save_steps=training.save_steps, save_total_limit=training.save_total_limit,
        seed=recipe.seed, data_seed=recipe.seed, report_to=report_to, run_name=recipe.run_name,
        gradient_checkpointing=training.gradient_checkpointing,
        bf16=bf16, use_cpu=bf16 and not is_torch_bf16_gpu_available(),  # else transformers refuses bf16 on a CPU
        disable_tqdm=False, dataloader_num_workers=0,
        ddp_backend=deepspeed_cpu_backend())
    if isinstance(training, TrainerSettings):
        args.update(num_train_epochs=training.epochs, max_steps=training.max_steps,
                    per_device_train_batch_size=training.batch_size, per_device_eval_batch_size=training.batch_size,
                    train_sampling_strategy="group_by_length" if training.group_by_length else "random")
    return args_class(**{**args, **extra})


def require_trainable(model_cfg) -> None:
    """4-bit weights cannot be trained directly: QLoRA trains a LoRA adapter on them."""
    if model_cfg.load_in_4bit and not model_cfg.use_lora:
        raise ConfigError("model.load_in_4bit needs model.use_lora: true (QLoRA trains a LoRA adapter on the "
                          "frozen 4-bit weights)")


def keep_trainable_dtype(trainer, dtype: str) -> None:
    """TRL casts QLoRA's trainable weights (adapters and modules_to_save such as a score head) to bf16;
    with fp32 compute that breaks the first forward. Put them back in the compute dtype."""
    if resolve_dtype(dtype) != "fp32":
        return
    for param in trainer.model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def start_tracking(trainer, training: HFTrainingSettings, recipe: Recipe, stage: str, out_dir: Path) -> RunTracker:
    """Open the tracker run (full resolved config; W&B names from `tracking:`) before training: HF's W&B
    callback then logs into this run. TensorBoard gets a callback writing <stage>/tensorboard/<run>-train;
    jsonl a callback writing <stage>/train_log.jsonl live."""
    tracker = RunTracker.start(recipe, stage, out_dir, training.report_to)
    if training.report_to == "jsonl":
        trainer.add_callback(JsonlLogCallback(out_dir / "train_log.jsonl"))
    if training.report_to == "tensorboard" and is_main_process():
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        log_dir = out_dir / "tensorboard" / f"{run_name(recipe, stage)}-train"
        trainer.add_callback(TensorBoardCallback(SummaryWriter(str(log_dir))))
    return tracker


def train(trainer, training: HFTrainingSettings, out_dir: Path, extra_state=None) -> None:
    """trainer.train() with atomic checkpoints, continuing from the newest complete checkpoint when resume is
    asked and one exists; then, when asked, the mean of the newest checkpoints' weights. `extra_state`: state
    of the stage's own that each checkpoint keeps (`save(folder)`) and a resume restores (`load(folder)`)."""
    if training.average_checkpoints > 1 and is_deepspeed_zero3_enabled():
        raise ConfigError("training.average_checkpoints needs whole weights in each process; under DeepSpeed "
                          "ZeRO-3 they are partitioned: set it to 1 or use ZeRO-2")
    clear_staging(out_dir / CHECKPOINTS)
    make_checkpoints_atomic(trainer, training.save_total_limit, extra_state.save if extra_state else None)
    latest = checkpoint.newest(out_dir / CHECKPOINTS, marker="trainer_state.json") if training.resume else None
    if training.resume:
        log.info("resuming from %s", latest or "scratch (no checkpoint yet)")
    if latest is not None and extra_state is not None:
        extra_state.load(latest)
    trainer.train(resume_from_checkpoint=str(latest) if latest else None)
    drop_autocast_forward(trainer.model)
    if training.average_checkpoints > 1:
        average_newest_checkpoints(trainer.model, out_dir / CHECKPOINTS, training.average_checkpoints,
                                   trainer.state.global_step, training.save_steps)
    dump_parameter_fingerprint(out_dir.name, trainer.model.named_parameters(), trainer.state.global_step)


def drop_autocast_forward(model) -> None:
    """Undo accelerate's mixed-precision wrapper (bf16 autocast around `model.forward`), so that what follows
    training (held-out scores, the score scale, samples) sees the forward the saved model has. Restores the
    forward accelerate found, keeping TRL's own patches (SFT's fused LM head), which accelerate's
    `unwrap_model(keep_fp32_wrapper=False)` strips as well, since TRL's wrapper also records a `__wrapped__`."""
    original = model.__dict__.pop("_original_forward", None)
    if original is not None:
        model.forward = original


def save_trained_model(trainer, out_dir: Path) -> None:
    """The trained model (or adapter) to out_dir, written by the main process; under ZeRO-3 the Trainer
    gathers the shards first. Outputs stay safetensors only: the Trainer's pickled training_args.bin goes."""
    trainer.save_model(str(out_dir))
    if is_main_process():
        (Path(out_dir) / "training_args.bin").unlink(missing_ok=True)


def loss_curve(trainer) -> list[float]:
    """Training losses as logged, in order."""
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def sample_rows(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    """At most `limit` rows, drawn reproducibly (all rows when limit is None)."""
    if limit is None or limit >= len(rows):
        return rows
    return random.Random(seed).sample(rows, limit)


def write_stage_outputs(out_dir: Path, metrics: dict[str, Any], recipe: Recipe, trainer=None,
                        tracker: RunTracker | None = None, stage: str | None = None) -> None:
    """On the main process: metrics.json (metrics + resolved config), the adapter's model card (README.md) for
    `stage` and, after training, train_log.jsonl; the final metrics (and adapters, with tracking.log_artifacts)
    to the tracker, whose run then closes."""
    if is_main_process():
        atomic_write_text(out_dir / "metrics.json", json.dumps({"metrics": metrics, "config": to_dict(recipe)}, indent=2))
        if stage is not None:
            write_model_card(out_dir, recipe, stage, metrics)
        if trainer is not None:
            lines = "".join(json.dumps(entry) + "\n" for entry in trainer.state.log_history)
            atomic_write_text(out_dir / "train_log.jsonl", lines)
    if tracker is not None:
        tracker.summary(metrics, trainer.state.global_step if trainer is not None else None)
        if recipe.tracking.log_artifacts:
            tracker.log_artifact(stage_artifact_files(out_dir), f"{run_name(recipe, out_dir.name)}-model")
        tracker.finish()
