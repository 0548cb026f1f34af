"""Tracking: a stage's metrics, sample tables, config and adapters reach W&B (offline run files read
back), TensorBoard gets event files, jsonl is written live, and only the main process logs."""

import importlib.util
import json

import pytest

from rlhf_ads import config, tracking
from rlhf_ads.errors import ConfigError
from rlhf_ads.ppo import trainer
from tests.ppo.test_trainer import LENGTH_REWARD, recipe, write_reward
from tests.stages.test_sft import tiny_recipe
from tests.wandb_offline import offline_run

pytest.importorskip("wandb")


@pytest.fixture
def offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)


def test_ppo_logs_metrics_samples_config_and_adapters_to_wandb(tmp_path, tiny_model_dir, offline_wandb):
    loaded = recipe(tmp_path, tiny_model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.steps=2",
                    "ppo.training.report_to=wandb", "tracking.project=ads-test", "tracking.group=nightly",
                    "tracking.entity=ads-team",
                    "tracking.tags=[cpu, tiny]", "tracking.log_artifacts=true")
    metrics = trainer.run(loaded)
    run = offline_run(tmp_path / "runs/quickstart/ppo")
    assert (run["run"].project, run["run"].run_group, list(run["run"].tags)) == ("ads-test", "nightly", ["cpu", "tiny"])
    assert run["run"].display_name == "quickstart-ppo" and run["run"].entity == "ads-team"
    assert run["config"]["ppo"]["steps"] == 2 and run["config"]["tracking"]["project"] == "ads-test"
    assert run["config"]["model"]["base"] == str(tiny_model_dir)
    steps = [h for h in run["history"] if "ppo/kl" in h]
    assert [h["_step"] for h in steps] == [1, 2]
    assert all(h["samples/_type"] == "table-file" and h["samples/nrows"] == 2 for h in steps)
    assert run["summary"]["ppo/score"] == pytest.approx(metrics["ppo/score"])
    assert ("quickstart-ppo-adapters", "model") in [(a.name, a.type) for a in run["artifacts"]]
    table = json.loads(next((tmp_path / "runs/quickstart/ppo/wandb").glob("offline-run-*/files/media/table/samples_1_*"))
                       .read_text())
    assert table["columns"] == ["step", "prompt_id", "response", "score", "prompt"] and len(table["data"]) == 2


def test_sft_reports_to_the_recipe_named_wandb_run(tmp_path, tiny_model_dir, offline_wandb):
    loaded = tiny_recipe(tmp_path, tiny_model_dir, "model.use_lora=true", "sft.num_samples=0", "sft.training.max_steps=2",
                         "sft.training.report_to=wandb", "tracking.project=ads-test", "tracking.tags=[sft]")
    from rlhf_ads.stages import sft

    metrics = sft.run(loaded)
    run = offline_run(tmp_path / "quickstart/sft")
    assert (run["run"].project, run["run"].run_group, list(run["run"].tags)) == ("ads-test", "quickstart", ["sft"])
    assert run["config"]["sft"]["training"]["report_to"] == "wandb"  # our resolved recipe
    assert run["config"]["learning_rate"] == 0.01  # and HF's TrainingArguments, in the same run
    assert any("train/loss" in h for h in run["history"])
    assert run["summary"]["sft/eval_loss"] == pytest.approx(metrics["sft/eval_loss"])


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_ppo_writes_tensorboard_events(tmp_path, tiny_model_dir):
    trainer.run(recipe(tmp_path, tiny_model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.steps=1",
                       "ppo.training.report_to=tensorboard"))
    assert list((tmp_path / "runs/quickstart/ppo/tensorboard/quickstart-ppo").rglob("events.out.tfevents.*"))


def test_jsonl_callback_writes_each_log_as_it_comes(tmp_path):
    from types import SimpleNamespace

    path = tmp_path / "train_log.jsonl"
    callback = tracking.JsonlLogCallback(path)
    state = SimpleNamespace(is_world_process_zero=True, log_history=[{"loss": 2.0, "step": 1}], global_step=1)
    callback.on_train_begin(None, state, None)  # a resumed run starts from its restored history
    state.global_step = 2
    callback.on_log(None, state, None, logs={"loss": 1.5})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"loss": 2.0, "step": 1},
                                                                            {"loss": 1.5, "step": 2}]
    callback.on_log(None, SimpleNamespace(is_world_process_zero=False, global_step=3), None, logs={"loss": 1.0})
    assert len(path.read_text().splitlines()) == 2  # other ranks write nothing


def test_only_the_main_process_opens_a_run(tmp_path, monkeypatch, offline_wandb):
    monkeypatch.setenv("RANK", "1")
    loaded = config.load(None, [f"output_dir={tmp_path}"])
    tracker = tracking.RunTracker.start(loaded, "ppo", tmp_path / "ppo", "wandb")
    assert not tracker.active
    tracker.log({"ppo/kl": 1.0}, 1)  # a no-op, not an error
    assert not (tmp_path / "ppo" / "wandb").exists()


def test_unknown_report_to_is_refused():
    with pytest.raises(ConfigError, match="report_to"):
        config.load(None, ["ppo.training.report_to=mlflow"])
    with pytest.raises(ConfigError, match="not one of"):
        tracking.trainer_report_to("mlflow")
