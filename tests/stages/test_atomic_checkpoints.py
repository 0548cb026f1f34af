"""HF-trainer checkpoints are atomic: a save lands under its final name only when complete, a crash
mid-save leaves nothing resume could pick, the newest save_total_limit are kept."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlhf_ads.stages import sft
from rlhf_ads import checkpoint
from rlhf_ads.checkpoint import STAGING
from rlhf_ads.stages.atomic_checkpoints import clear_staging, make_checkpoints_atomic
from tests.stages.test_sft import tiny_recipe


def fake_trainer(root: Path, crash_at: int | None = None):
    """A stand-in with the Trainer's save contract: `_save_checkpoint` writes args.output_dir/checkpoint-<step>."""
    trainer = SimpleNamespace(args=SimpleNamespace(output_dir=str(root)), state=SimpleNamespace(global_step=0))

    def save_in_place(model, trial):
        folder = Path(trainer.args.output_dir) / f"checkpoint-{trainer.state.global_step}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"weights")
        if trainer.state.global_step == crash_at:
            raise KeyboardInterrupt("killed mid-save")
        (folder / "trainer_state.json").write_text("{}")

    trainer._save_checkpoint = save_in_place
    return trainer


def test_a_save_is_renamed_only_when_complete_and_old_ones_are_pruned(tmp_path):
    root = tmp_path / "sft" / "checkpoints"
    trainer = fake_trainer(root, crash_at=4)
    make_checkpoints_atomic(trainer, keep=2)
    for step in (1, 2, 3):
        trainer.state.global_step = step
        trainer._save_checkpoint(None, None)
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-2", "checkpoint-3"]
    trainer.state.global_step = 4
    with pytest.raises(KeyboardInterrupt):
        trainer._save_checkpoint(None, None)
    assert not (root / "checkpoint-4").exists() and (root / STAGING / "checkpoint-4").is_dir()
    assert trainer.args.output_dir == str(root)  # restored even when the save fails
    assert checkpoint.newest(root, marker="trainer_state.json") == root / "checkpoint-3"
    clear_staging(root)
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-2", "checkpoint-3"]


def test_sft_keeps_the_newest_checkpoints_and_resumes_past_a_half_save(tmp_path, tiny_model_dir):
    common = ["model.use_lora=true", "sft.num_samples=0", "sft.training.save_steps=2", "sft.training.save_total_limit=2"]
    sft.run(tiny_recipe(tmp_path, tiny_model_dir, *common, "sft.training.max_steps=6"))
    root = tmp_path / "quickstart/sft/checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    assert json.loads((root / "checkpoint-6/trainer_state.json").read_text())["global_step"] == 6
    (root / STAGING / "checkpoint-8").mkdir(parents=True)  # what a kill during the step-8 save leaves
    metrics = sft.run(tiny_recipe(tmp_path, tiny_model_dir, *common, "sft.training.max_steps=8",
                                  "sft.training.resume=true"))
    assert metrics["sft/steps"] == 8
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-6", "checkpoint-8"]
