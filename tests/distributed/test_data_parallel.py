"""Two processes under `accelerate launch --multi_gpu --num_processes 2` with ACCELERATE_USE_CPU=true (a
real gloo group on CPUs): both ranks train on their own data, parameters stay equal, outputs are
written once. Each rank dumps a hash of its trainable parameters when RLHF_ADS_PARAM_FINGERPRINT_DIR
is set (rlhf_ads.tracking.dump_parameter_fingerprint)."""

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, launch_two_ranks, tiny_ppo

pytestmark = pytest.mark.integration

RANK_REWARD = """
import os
from pathlib import Path

def score(completions, prompts, **columns):
    with (Path(__file__).parent / f"prompts-rank{os.environ['RANK']}.txt").open("a") as log:
        log.write("".join(p.replace("\\n", " ") + "\\n" for p in prompts))
    return [min(len(c), 20) / 20 for c in completions]
"""


def launch(tmp_path: Path, stage: str, recipe: dict) -> None:
    """scripts/<stage>.py on `recipe` in two plain data-parallel CPU ranks, fingerprints under tmp_path."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    launch_two_ranks(REPO / "scripts" / f"{stage}.py", "--config", str(path), cwd=tmp_path,
                     fingerprints=tmp_path / "fingerprints")


def fingerprints(tmp_path: Path, stage: str) -> list[dict]:
    found = sorted((tmp_path / "fingerprints").glob(f"{stage}-rank*.json"))
    return [json.loads(p.read_text()) for p in found]


def test_ppo_two_ranks_share_gradients_on_their_own_prompts(tmp_path, tiny_model_dir):
    (tmp_path / "rank_reward.py").write_text(RANK_REWARD)
    recipe = {"model": {"base": str(tiny_model_dir), "dtype": "fp32"}, "output_dir": str(tmp_path / "runs"),
              "rewards": [{"function": str(tmp_path / "rank_reward.py") + ":score", "name": "mine"},
                          {"function": "recent_diversity", "name": "recent"}],
              "ppo": tiny_ppo(batch_size=2, max_new_tokens=4, log_samples=2, training={"learning_rate": 0.01})}
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
    state = json.loads((out / "checkpoints/checkpoint-2/state.json").read_text())
    assert len(state["rewards"]["recent"]["function"]["recent"]) == 8  # 2 steps x 2 ranks x 2 ads: both ranks'


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
