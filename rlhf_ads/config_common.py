"""The building blocks of stage sections: where rows come from, and the `training:` settings shapes.

`rlhf_ads.config` (the classic stages) and `rlhf_ads.config_online` (dpo, grpo, rloo) both build on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rlhf_ads.config_schema import option

ReportTo = Literal["none", "wandb", "tensorboard", "jsonl"]  # a stage's tracker (rlhf_ads.tracking)


@dataclass
class DataSource:
    """Where a stage's rows come from. A plain string in a recipe is short for {path: <string>}."""

    SHORTHAND = "path"

    path: str = option(help=(
        "'bundled:<kind>[:<split>]' (kinds: briefs, sft, preferences, clicks), a .jsonl/.csv/.parquet file, "
        "or a datasets save_to_disk folder."))
    split: str | None = option(None, help="Keep rows whose 'split' column equals this; for a DatasetDict folder, the split.")
    columns: dict[str, str] = option(help="Map our column names to yours, e.g. {chosen: better_ad, rejected: worse_ad}.",
                                     factory=dict)
    on_error: Literal["error", "skip"] = option("error", help=(
        "Bad rows: 'error' stops naming every one; 'skip' drops them, prints the count by reason and "
        "saves them to data_problems.jsonl in the stage's output folder."))
    max_text_chars: int = option(2000, help="Longest text field accepted, in characters.")
    briefs: str | None = option(None, help="Briefs to resolve a brief_id column against (bundled data: the bundled briefs).")


@dataclass
class TrainingSettings:
    """Optimizer and checkpoints: the `training:` section every training stage has."""

    learning_rate: float = option(2e-4, help="Peak learning rate (LoRA wants ~1e-4..5e-4; full fine-tuning ~1e-5).")
    grad_accum: int = option(1, help="Micro-batches whose gradients add up before one optimizer step (saves memory).")
    weight_decay: float = option(0.0, help="AdamW weight decay.")
    max_grad_norm: float = option(1.0, help="Gradient clipping norm.")
    gradient_checkpointing: bool = option(False, help=(
        "Recompute activations in the backward pass instead of keeping them: less memory, one more forward pass "
        "per micro-batch. Whether it is faster or slower depends on the model and the machine: measure it "
        "(make bench-trainers, make bench)."))
    save_steps: int = option(50, help="Save a checkpoint every N steps (resume continues from the newest).")
    save_total_limit: int = option(2, help="Keep the newest N checkpoints.")
    report_to: ReportTo = option("none", help=(
        "Where metrics go besides the stage's own log file: 'wandb' (names from the recipe's `tracking:` section), "
        "'tensorboard' (<stage>/tensorboard/), 'jsonl' (the log file written live) or 'none'."))
    resume: bool = option(False, help="Continue from the newest checkpoint in the stage's folder (also --resume).")

    def __post_init__(self):
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


@dataclass
class HFTrainingSettings(TrainingSettings):
    """What every stage on Hugging Face's Trainer adds to the common settings: warm-up, logging, mixed precision
    and checkpoint averaging."""

    warmup_ratio: float = option(0.05, help="Share of steps with linear learning-rate warm-up.")
    mixed_precision: Literal["none", "bf16"] = option("none", help=(
        "'bf16': matmuls in bf16 under autocast while weights, gradients and optimizer state stay in the model's "
        "dtype (the trainer's bf16 mixed precision). Whether it pays depends on the CPU: `make bench-precision` "
        "measures it."))
    logging_steps: int = option(10, help="Log training metrics every N steps.")
    average_checkpoints: int = option(1, help=(
        "After training, the model becomes the uniform average of the weights in its newest N checkpoints, the "
        "last being the final step (latest weight averaging; needs save_total_limit >= N, or 0 to keep all); "
        "1: the final weights."))

    def __post_init__(self):
        super().__post_init__()
        if self.average_checkpoints < 1:
            raise ValueError(f"average_checkpoints must be >= 1, got {self.average_checkpoints}")
        if 0 < self.save_total_limit < self.average_checkpoints:
            raise ValueError(f"average_checkpoints={self.average_checkpoints} needs save_total_limit >= "
                             f"{self.average_checkpoints} (or 0, keep all), got {self.save_total_limit}")


@dataclass
class TrainerSettings(HFTrainingSettings):
    """`training:` of the stages that pass over rows (sft, reward, dpo): the HF settings plus schedule and
    batching."""

    epochs: float = option(1.0, help="Passes over the training rows (max_steps wins when set).")
    max_steps: int = option(-1, help="Stop after this many optimizer steps; -1: run the epochs.")
    batch_size: int = option(8, help="Rows per device per forward pass (pairs for the reward model and DPO).")
    max_length: int = option(512, help=(
        "Longest tokenized row; SFT cuts the prompt's start to fit (the ad is kept), the reward stage drops longer "
        "rows, DPO drops pairs whose prompt alone fills it and cuts the others' ends."))
    group_by_length: bool = option(False, help=(
        "Batch rows of similar token length together (in random order of batches): less padding."))
    max_train_rows: int | None = option(None, help="Use only the first N training rows (after shuffling with the seed).")
    max_eval_rows: int | None = option(400, help="Use only the first N held-out rows for evaluation.")

    def __post_init__(self):
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
