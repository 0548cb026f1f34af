"""Two processes under `accelerate launch --multi_gpu --num_processes 2` with ACCELERATE_USE_CPU=true (a
real gloo group on CPUs): both ranks train on their own data, parameters stay equal, outputs are
written once. Each rank dumps a hash of its trainable parameters when RLHF_ADS_PARAM_FINGERPRINT_DIR
is set (rlhf_ads.tracking.dump_parameter_fingerprint)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))

pytestmark = pytest.mark.integration

RANK_REWARD = """
import os
from pathlib import Path

def score(completions, prompts, **columns):
    with (Path(__file__).parent / f"prompts-rank{os.environ['RANK']}.txt").open("a") as log:
        log.write("".join(p.replace("\\n", " ") + "\\n" for p in prompts))
    return [min(len(c), 20) / 20 for c in completions]
"""


def launch(tmp_path: Path, stage: str, recipe: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = dict(os.environ, ACCELERATE_USE_CPU="true", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               RLHF_ADS_PARAM_FINGERPRINT_DIR=str(tmp_path / "fingerprints"), WANDB_MODE="disabled")
    command = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "scripts" / f"{stage}.py"),
               "--config", str(path)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def fingerprints(tmp_path: Path, stage: str) -> list[dict]:
    found = sorted((tmp_path / "fingerprints").glob(f"{stage}-rank*.json"))
    return [json.loads(p.read_text()) for p in found]


def test_ppo_two_ranks_share_gradients_on_their_own_prompts(tmp_path, tiny_model_dir):
    (tmp_path / "rank_reward.py").write_text(RANK_REWARD)
    recipe = {"model": {"base": str(tiny_model_dir), "dtype": "fp32"}, "output_dir": str(tmp_path / "runs"),
              "rewards": [{"function": str(tmp_path / "rank_reward.py") + ":score", "name": "mine"}],
              "ppo": {"steps": 2, "batch_size": 2, "mini_batch_size": 2, "ppo_epochs": 1, "max_new_tokens": 4,
                      "max_prompt_tokens": 256, "save_steps": 1, "log_samples": 2, "learning_rate": 0.01}}
    launch(tmp_path, "ppo", recipe)
    ranks = fingerprints(tmp_path, "ppo")
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["steps"] == 2 for r in ranks)
    assert ranks[0]["sha256"] == ranks[1]["sha256"]  # gradients were averaged: the ranks stay equal
    prompts = [(tmp_path / f"prompts-rank{r}.txt").read_text().splitlines() for r in (0, 1)]
    assert len(prompts[0]) == len(prompts[1]) == 4 and not set(prompts[0]) & set(prompts[1])  # own shards
    out = tmp_path / "runs/quickstart/ppo"
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]  # written once, by the main process
    assert len((out / "samples.jsonl").read_text().splitlines()) == 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"]["step"] == 2


def tiny_sft_recipe(tmp_path, model_dir) -> dict:
    """Two SFT steps of batch 2 on the tiny model, a checkpoint after each, live jsonl logs, 2 samples."""
    return {"model": {"base": str(model_dir), "dtype": "fp32", "use_lora": True},
            "output_dir": str(tmp_path / "runs"),
            "sft": {"num_samples": 2, "max_new_tokens": 4,
                    "training": {"max_steps": 2, "batch_size": 2, "max_train_rows": 8, "max_eval_rows": 4,
                                 "save_steps": 1, "logging_steps": 1, "max_length": 1024, "report_to": "jsonl"}}}


def test_sft_two_ranks_train_equal_and_write_once(tmp_path, tiny_model_dir):
    launch(tmp_path, "sft", tiny_sft_recipe(tmp_path, tiny_model_dir))
    ranks = fingerprints(tmp_path, "sft")
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["steps"] == 2 for r in ranks)
    assert ranks[0]["sha256"] == ranks[1]["sha256"]
    out = tmp_path / "runs/quickstart/sft"
    assert (out / "adapter_model.safetensors").is_file()
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in logged if "loss" in e] == [1, 2]  # one writer
