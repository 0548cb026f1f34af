"""The PPO benchmark script runs: --help, and one tiny step of ours on a random-init model (no peer,
no downloads, no timing assertions)."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ppo_vs_trl.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--skip-peer" in out.stdout and "--dtypes" in out.stdout


def test_tiny_run_without_peer(tiny_model_dir, tmp_path):
    command = [sys.executable, str(SCRIPT), "--base", str(tiny_model_dir), "--skip-peer", "--dtypes", "fp32",
               "--steps", "1", "--warmup", "0", "--batch-size", "2", "--mini-batch-size", "2", "--new-tokens", "4",
               "--probe-seconds", "0.01", "--matmul-n", "64", "--probe-mb", "8", "--out", str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = json.loads((tmp_path / "results.json").read_text())
    (ours,) = summary["results"]
    assert ours["framework"] == "ours" and ours["same_prompts"] and len(ours["steps"]) == 1
    assert ours["samples_per_s"] > 0 and ours["peak_rss_bytes"] > 0
    assert "## Floor" in (tmp_path / "RESULTS.md").read_text()
