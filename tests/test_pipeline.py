"""`rlhf-ads pipeline` on a tiny model as a subprocess: SFT -> reward -> PPO -> evaluate, then the report."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from rlhf_ads import config
from rlhf_ads.errors import ConfigError
from rlhf_ads.pipeline import STAGES, parse_stages
from tests.helpers import RLHF_ADS, tiny_ppo
from tests.wandb_offline import offline_run

TRAINING = {"max_steps": 3, "batch_size": 4, "max_train_rows": 12, "max_eval_rows": 4, "learning_rate": 0.005,
            "warmup_ratio": 0, "logging_steps": 1, "max_length": 1024}


def tiny_pipeline_recipe(tmp_path, model_dir) -> Path:
    recipe = {"model": {"base": str(model_dir), "dtype": "fp32", "use_lora": True, "lora": {"r": 4, "alpha": 8}},
              "sft": {"training": TRAINING, "num_samples": 0},
              "reward": {"backbone": "causal", "training": TRAINING},
              "rewards": [{"function": "reward_model", "name": "rm", "kwargs": {"path": "{run_dir}/reward"}},
                          {"function": "length_limit"}],
              "ppo": tiny_ppo(eval_every=1, eval_num_prompts=2),
              "evaluate": {"num_briefs": 4, "batch_size": 4, "max_new_tokens": 6, "report_samples": 2,
                           "report_to": "wandb"}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_pipeline_runs_every_stage_and_writes_the_report(tmp_path, tiny_model_dir):
    recipe = tiny_pipeline_recipe(tmp_path, tiny_model_dir)
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", WANDB_SILENT="true")
    done = subprocess.run([RLHF_ADS, "pipeline", str(recipe), "output_dir=out"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "out/quickstart"
    record = json.loads((run_dir / "pipeline.json").read_text())
    seconds = record["seconds"]
    assert list(seconds) == config.Recipe().pipeline == ["sft", "reward", "ppo", "evaluate"]  # the default stages
    assert set(record["peak_rss_mb"]) == set(seconds) and all(mb > 0 for mb in record["peak_rss_mb"].values())
    metrics = json.loads((run_dir / "report/metrics.json").read_text())["metrics"]
    for name in ("base", "sft", "ppo"):
        for key in ("gold", "compliance", "composite_reward", "distinct_2", "self_bleu", "kl_to_sft", "reward/rm"):
            assert f"eval/{name}/{key}" in metrics, (name, key)
    assert 0.0 <= metrics["eval/ppo/win_rate_vs_sft"] <= 1.0
    assert 0.0 <= metrics["eval/ppo/win_rate_vs_sft_gold"] <= 1.0
    assert metrics["eval/ppo/gold_vs_sft_low"] <= metrics["eval/ppo/gold_vs_sft"] <= metrics["eval/ppo/gold_vs_sft_high"]
    assert len((run_dir / "ppo/eval.jsonl").read_text().splitlines()) == 3  # steps 0, 1, 2
    report = (run_dir / "report/report.html").read_text()
    assert "part of the reward mix PPO trained against" in report
    assert "on 4 briefs: too few briefs to tell" in report  # a verdict needs at least 5
    for section in ("Comparison", "Methods compared", "PPO training", "Distributions", "Reward model", "Stage timings",
                    "Sample ads"):
        assert f"<h2>{section}" in report, section
    assert report.count("data:image/png;base64,") == 3
    tracked = offline_run(run_dir / "report")  # the same metrics reach the tracker
    assert tracked["summary"]["eval/ppo/gold"] == pytest.approx(metrics["eval/ppo/gold"])

    again = subprocess.run([RLHF_ADS, "pipeline", str(recipe), "output_dir=out", "--resume"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("already finished") == len(seconds)
    assert json.loads((run_dir / "pipeline.json").read_text())["seconds"] == seconds


def test_stage_subsets_keep_pipeline_order_and_unknown_names_fail():
    assert parse_stages("evaluate, sft") == ("sft", "evaluate")
    assert parse_stages(None) == STAGES == ("sft", "reward", "ppo", "dpo", "grpo", "rloo", "evaluate")
    assert parse_stages(None, ["evaluate", "grpo", "sft"]) == ("sft", "grpo", "evaluate")  # a recipe's pipeline:
    with pytest.raises(ConfigError, match="unknown pipeline stage.*rl.*choose from sft"):
        parse_stages("sft,rl")


def test_run_dir_placeholder_names_this_runs_outputs():
    recipe = config.load(Path(__file__).parents[1] / "recipes/quickstart.yaml", ["output_dir=/data/runs", "run_name=exp1"])
    assert recipe.rewards[0].kwargs["path"] == "/data/runs/exp1/reward"
