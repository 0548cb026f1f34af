"""Atomic checkpoints for the HF/TRL trainers of the sft and reward stages.

The Trainer writes `checkpoint-N` in place, so a crash mid-save leaves a half checkpoint that resume
could pick. Here every save goes to <checkpoints>/.partial-staging/checkpoint-N first (all ranks write
there: the main process the weights and state, each rank its RNG state, each ZeRO rank its shard);
after a barrier the main process renames it to <checkpoints>/checkpoint-N and keeps the newest
`save_total_limit`. A killed run leaves only the staging folder, which the next start deletes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from rlhf_ads import checkpoint
from rlhf_ads.private_apis import wrap_trainer_checkpoint_save
from rlhf_ads.processes import barrier, is_main_process


def make_checkpoints_atomic(trainer, keep: int, write_extra: Callable[[Path], None] | None = None) -> None:
    """Route `trainer`'s checkpoint saves through the staging folder; `write_extra(folder)` adds the stage's own
    state to each checkpoint (main process) before it is published."""
    root = Path(trainer.args.output_dir)
    staging = checkpoint.staging_folder(root)

    def atomically(save_in_place):
        def save_atomically(model, trial=None):
            trainer.args.output_dir = str(staging)
            try:
                save_in_place(model, trial)
            finally:
                trainer.args.output_dir = str(root)
            barrier()  # every rank has written its part
            if is_main_process():
                name = f"{checkpoint.PREFIX}{trainer.state.global_step}"
                if write_extra is not None:
                    write_extra(staging / name)
                checkpoint.publish(staging / name, root / name)
                shutil.rmtree(staging, ignore_errors=True)
                checkpoint.prune(root, keep)
            barrier()
        return save_atomically

    wrap_trainer_checkpoint_save(trainer, atomically)


def clear_staging(checkpoints_dir: Path) -> None:
    """Delete what a killed save left (main process only; call before training)."""
    if is_main_process() and Path(checkpoints_dir).is_dir():
        checkpoint.remove_partials(Path(checkpoints_dir))
    barrier()

