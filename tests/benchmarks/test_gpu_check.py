"""The prepared GPU check runs its whole code path on a CPU with a tiny model: every variant's stages, the JSON
and the Markdown (smoke only: no timing assertions)."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
SMALL = ["ppo.batch_size=4", "ppo.mini_batch_size=2", "ppo.max_new_tokens=6", "sft.training.batch_size=2",
         "reward.training.batch_size=2"]


def test_gpu_check_runs_every_variant_on_a_tiny_cpu_model(tmp_path):
    command = [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--shape", "tiny", "--steps", "2",
               *[f"--set={setting}" for setting in SMALL]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    ran = [(r["variant"], r["stage"]) for r in summary["runs"]]
    assert ran == [("nf4", "sft"), ("nf4", "reward"), ("nf4", "ppo"), ("bf16", "sft"), ("bf16", "reward"),
                   ("bf16", "ppo"), ("nf4-static-cache", "ppo")]
    for run in summary["runs"]:
        assert "error" not in run and "skipped" not in run, run
        assert run["samples_per_s"] > 0 and run["measured_steps"] >= 1 and run["peak_rss_gib"] > 0
    ppo = next(r for r in summary["runs"] if r["stage"] == "ppo")
    assert {"generation", "reward", "train_forward", "backward", "optimizer"} <= set(ppo["phase_s"])
    assert summary["base"]["parameters"] > 0 and summary["environment"]["bitsandbytes"]
    text = (tmp_path / "gpu_check.md").read_text()
    assert "| nf4-static-cache | ppo |" in text and "4-bit NF4 speed as a multiple of bf16" in text


def test_a_spent_budget_skips_the_stages_and_still_writes_the_report(tmp_path):
    command = [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--shape", "tiny", "--budget-s", "0",
               "--variants", "nf4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    runs = json.loads((tmp_path / "gpu_check.json").read_text())["runs"]
    assert [r["skipped"] for r in runs] == ["time budget (0 s) spent"] * 3
