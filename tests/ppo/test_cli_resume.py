"""The real CLI: a user's reward file named in the recipe drives PPO; SIGKILL mid-run, then --resume,
gives the metrics an uninterrupted run gives."""

import json
import os
import signal
import subprocess
import time

import yaml

from rlhf_ads.ppo.trainer import without_timings
from tests.helpers import RLHF_ADS, tiny_ppo


def write_recipe(tmp_path, model_dir):
    (tmp_path / "my_reward.py").write_text(
        "def score(completions, prompts, **columns):\n"
        "    assert 'keywords' in columns and len(columns['keywords']) == len(completions)\n"
        "    return [min(len(c), 20) / 20 for c in completions]\n")
    recipe = {"model": {"base": str(model_dir), "dtype": "fp32"},
              "rewards": [{"function": "my_reward.py:score", "name": "mine"}],
              "ppo": tiny_ppo(steps=4)}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def metrics(folder):
    lines = (folder / "quickstart/ppo/metrics.jsonl").read_text().splitlines()
    return [without_timings(json.loads(line)) for line in lines]


def test_user_reward_file_drives_ppo_and_sigkill_resume_matches(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    straight = subprocess.run([RLHF_ADS, "ppo", str(recipe), "output_dir=a"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert all("reward/mine" in m for m in metrics(tmp_path / "a"))

    proc = subprocess.Popen([RLHF_ADS, "ppo", str(recipe), "output_dir=b"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "b/quickstart/ppo/checkpoints"
    deadline = time.time() + 300
    while not (checkpoints / "checkpoint-2").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run([RLHF_ADS, "ppo", str(recipe), "output_dir=b", "--resume"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics(tmp_path / "b") == metrics(tmp_path / "a")
    assert not list(checkpoints.glob(".partial-*"))  # no half-written checkpoint survives
