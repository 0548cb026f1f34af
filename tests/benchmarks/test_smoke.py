"""The PPO benchmark script runs: --help, and one tiny step of ours on a random-init model (no peer,
no downloads, no timing assertions)."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ppo_vs_trl.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--skip-peer" in out.stdout and "--dtypes" in out.stdout


def test_tiny_run_without_peer(tiny_model_dir, tmp_path):
    """Our settings (the defaults, with gradient checkpointing, with the value function's own adapter) run and
    reach the report."""
    command = [sys.executable, str(SCRIPT), "--base", str(tiny_model_dir), "--skip-peer", "--dtypes", "fp32",
               "--steps", "1", "--warmup", "0", "--batch-size", "2", "--mini-batch-size", "2", "--new-tokens", "4",
               "--probe-seconds", "0.01", "--matmul-n", "64", "--probe-mb", "8", "--out", str(tmp_path),
               "--ours-modes", "defaults,checkpointed,adapter-critic"]  # compiled: tests/ppo/test_trainer.py
    out = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = json.loads((tmp_path / "results.json").read_text())
    modes = [(r["framework"], r["mode"]) for r in summary["results"]]
    assert modes == [("ours", "defaults"), ("ours", "checkpointed"), ("ours", "adapter-critic")]
    for ours in summary["results"]:
        assert ours["same_prompts"] and len(ours["steps"]) == 1
        assert ours["samples_per_s"] > 0 and ours["peak_rss_bytes"] > 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Floor" in text and "**ours, checkpointed, fp32**" in text and "**ours, adapter-critic, fp32**" in text
    assert not any(r["timers_missing"] for r in summary["results"])


TRAINERS = SCRIPT.parent / "trainers_vs_trl.py"


def test_trainers_benchmark_tiny(tiny_model_dir, tmp_path):
    """Ours and plain TRL each train two steps of SFT and of a causal reward model, in two alternating rounds;
    the report section lands in RESULTS.md next to (not over) the PPO report."""
    (tmp_path / "RESULTS.md").write_text("# PPO benchmark\n\nppo numbers\n")
    command = [sys.executable, str(TRAINERS), "--cases", "sft,rm-causal", "--steps", "2", "--warmup", "1", "--rounds", "2",
               f"--set=model.base={tiny_model_dir}", "--set=reward.training.max_length=1024", "--out", str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = json.loads((tmp_path / "trainers.json").read_text())
    runs = sorted((r["case"], r["side"], r["round"]) for r in summary["results"])
    assert runs == sorted((case, side, round_number) for case in ("sft", "rm-causal")
                          for side in ("ours", "trl", "trl-no-gc") for round_number in (1, 2))
    for result in summary["results"]:
        assert len(result["step_seconds"]) == 2 and result["tokens_per_step"] > 0 and result["rows_per_s"] > 0
    assert {c["case"] for c in summary["comparisons"]} == {"sft", "rm-causal"}
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.startswith("# PPO benchmark") and "ppo numbers" in text
    assert "## Training stages" in text and text.count("<!-- trainers:start -->") == 1


def test_trainer_comparison_takes_each_sides_fastest_round():
    sys.path.insert(0, str(TRAINERS.parent))
    from trainers_vs_trl import compare

    def run(side, rows_per_s, gib, round_number):
        return {"case": "sft", "side": side, "rows_per_s": rows_per_s, "peak_rss_bytes": gib * 2 ** 30, "round": round_number}

    results = [run("ours", 0.6, 3.0, 1), run("trl", 0.5, 4.0, 1), run("trl-no-gc", 0.55, 7.0, 1),
               run("ours", 0.9, 3.2, 2), run("trl", 0.6, 4.2, 2), run("trl-no-gc", 0.45, 6.9, 2)]
    [comparison] = compare(results)
    assert comparison["speed_ratio"] == 0.9 / 0.6 and comparison["speed_peer"] == "trl"
    assert comparison["memory_ratio"] == 3.0 / 4.0 and comparison["memory_peer"] == "trl"
