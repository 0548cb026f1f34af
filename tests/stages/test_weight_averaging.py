"""training.average_checkpoints: the saved model is the mean of the newest checkpoints' weights."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from rlhf_ads import config
from rlhf_ads.checkpoint import list_checkpoints
from rlhf_ads.errors import ConfigError
from rlhf_ads.stages.weight_averaging import average_newest_checkpoints, saved_steps
from tests.stages.test_reward import run_tiny

AVERAGE_3 = ["reward.training.save_steps=2", "reward.training.save_total_limit=3",
             "reward.training.average_checkpoints=3"]


@pytest.mark.parametrize("extra, weights_file", [(["reward.training.learning_rate=0.001"], "model.safetensors"),
                                                 (["model.use_lora=true"], "adapter_model.safetensors")],
                         ids=["full", "lora"])
def test_reward_stage_saves_and_scores_the_mean_of_its_last_checkpoints(tmp_path, tiny_model_dir, extra,
                                                                         weights_file):
    metrics, out = run_tiny(tmp_path, tiny_model_dir, *AVERAGE_3, *extra)
    folders = list_checkpoints(out / "checkpoints")
    assert [f.name for f in folders] == ["checkpoint-4", "checkpoint-6", "checkpoint-8"]
    checkpoints = [load_file(f / weights_file) for f in folders]
    saved = load_file(out / weights_file)
    assert saved.keys() == checkpoints[0].keys()
    for name, tensor in saved.items():
        expected = sum(c[name].float() for c in checkpoints) / 3
        torch.testing.assert_close(tensor.float(), expected, rtol=1e-5, atol=1e-7)
    assert any(not torch.equal(saved[k], checkpoints[-1][k]) for k in saved)  # not simply the final weights
    assert 0.0 <= metrics["rm/accuracy"] <= 1.0


def save_constant_checkpoint(root, step, model, value):
    (root / f"checkpoint-{step}").mkdir()
    save_file({k: torch.full_like(v, value) for k, v in model.state_dict().items()},
              root / f"checkpoint-{step}" / "model.safetensors")


def test_average_takes_this_runs_newest_checkpoints_and_no_stale_ones(tmp_path):
    model = torch.nn.Linear(2, 1)
    for step, value in [(2, 1.0), (4, 3.0), (6, 100.0)]:  # checkpoint-6: left by an earlier, longer run
        save_constant_checkpoint(tmp_path, step, model, value)
    with pytest.raises(ConfigError, match="average_checkpoints=3 needs the run's newest 3.*the run saved fewer"):
        average_newest_checkpoints(model, tmp_path, 3, final_step=4, save_steps=2)
    folders = average_newest_checkpoints(model, tmp_path, 2, final_step=4, save_steps=2)
    assert [f.name for f in folders] == ["checkpoint-2", "checkpoint-4"]
    assert torch.equal(model.weight, torch.full((1, 2), 2.0))
    with pytest.raises(ConfigError, match="missing: checkpoint-5"):  # a final step off the save grid
        average_newest_checkpoints(model, tmp_path, 2, final_step=5, save_steps=2)


def test_saved_steps_include_the_final_step():
    assert saved_steps(7, 3, 3) == [3, 6, 7]
    assert saved_steps(618, 103, 3) == [412, 515, 618]
    assert saved_steps(4, 10, 2) == [4]


def test_checkpoints_of_another_model_are_refused(tmp_path):
    (tmp_path / "checkpoint-1").mkdir()
    save_file({"other.weight": torch.zeros(2)}, tmp_path / "checkpoint-1" / "model.safetensors")
    with pytest.raises(ConfigError, match="hold weights this model lacks"):
        average_newest_checkpoints(torch.nn.Linear(2, 1), tmp_path, 1, final_step=1, save_steps=1)


def test_average_must_fit_in_the_checkpoints_kept():
    with pytest.raises(ConfigError, match="average_checkpoints=3 needs save_total_limit >= 3"):
        config.load(None, ["reward.training.average_checkpoints=3", "reward.training.save_total_limit=2"])
    recipe = config.load(None, ["reward.training.average_checkpoints=3", "reward.training.save_total_limit=0"])
    assert recipe.reward.training.average_checkpoints == 3


def test_zero3_partitioned_weights_are_refused_before_training(tmp_path, monkeypatch):
    from rlhf_ads.stages import common

    monkeypatch.setattr(common, "is_deepspeed_zero3_enabled", lambda: True)
    training = config.TrainerSettings(save_total_limit=3, average_checkpoints=3)
    with pytest.raises(ConfigError, match="ZeRO-3"):
        common.train(trainer=None, training=training, out_dir=tmp_path)  # refused before the trainer is touched
