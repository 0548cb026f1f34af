"""DeepSpeed ZeRO-2 on the CPU: the sft and reward stages in two processes under `accelerate launch --config_file
recipes/accelerate/zero2_cpu.yaml` with DS_ACCELERATOR=cpu (a gloo group). Both ranks train, ZeRO shards
the optimizer over both, parameters stay equal, outputs are written once. The config itself is validated
in test_accelerate_configs.py, with or without DeepSpeed."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_distributed import tiny_sft_recipe

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                 reason="DeepSpeed is not installed here (pip install 'rlhf-ads[deepspeed]')")]


def tiny_reward_recipe(tmp_path, model_dir) -> dict:
    """Two pairwise reward-model steps of batch 2 (LoRA + score head on the tiny model), a checkpoint after each."""
    return {"model": {"base": str(model_dir), "dtype": "fp32", "use_lora": True},
            "output_dir": str(tmp_path / "runs"),
            "reward": {"training": {"max_steps": 2, "batch_size": 2, "max_train_rows": 8, "max_eval_rows": 4,
                                    "save_steps": 1, "logging_steps": 1, "max_length": 1024, "report_to": "jsonl"}}}


@pytest.mark.parametrize("stage, make_recipe, weights", [("sft", tiny_sft_recipe, "adapter_model.safetensors"),
                                                         ("reward", tiny_reward_recipe, "adapter_model.safetensors")])
def test_zero2_two_cpu_ranks_train_equal_and_write_once(tmp_path, tiny_model_dir, stage, make_recipe, weights):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(make_recipe(tmp_path, tiny_model_dir)))
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}  # it would turn DeepSpeed off
    env.update(DS_ACCELERATOR="cpu", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", WANDB_MODE="disabled",
               RLHF_ADS_PARAM_FINGERPRINT_DIR=str(tmp_path / "fingerprints"))
    command = [ACCELERATE, "launch", "--config_file", str(ROOT / "recipes/accelerate/zero2_cpu.yaml"),
               str(ROOT / f"scripts/{stage}.py"), "--config", str(tmp_path / "recipe.yaml")]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    ranks = [json.loads(p.read_text()) for p in sorted((tmp_path / "fingerprints").glob(f"{stage}-rank*.json"))]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["steps"] == 2 for r in ranks)
    assert ranks[0]["sha256"] == ranks[1]["sha256"]
    out = tmp_path / "runs/quickstart" / stage
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [e for e in logged if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2]  # one writer
    assert steps[-1]["epoch"] == 1.0  # 8 rows in 2 steps of 2 rows: the Trainer saw a world of 2
    shards = sorted(p.name for p in (out / "checkpoints/checkpoint-2/global_step2").glob("zero_pp_rank_*"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    assert (out / weights).is_file() and (out / "metrics.json").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]
