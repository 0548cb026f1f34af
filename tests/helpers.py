"""What many tests share: the console scripts, a length reward file, a tiny PPO recipe section, and
launching a script in two CPU ranks under `accelerate launch`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rlhf_ads.tracking import FINGERPRINT_ENV

REPO = Path(__file__).resolve().parents[1]
RLHF_ADS = str(Path(sys.executable).with_name("rlhf-ads"))
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))

LENGTH_REWARD = """
def score(completions, prompts, **columns):
    return [min(len(c), 20) / 20 for c in completions]
"""


def write_length_reward(folder: Path, name: str = "length_reward.py") -> str:
    """A reward file scoring each completion by its length (capped at 20 characters); returns its
    `path:score` spec."""
    path = Path(folder) / name
    path.write_text(LENGTH_REWARD)
    return f"{path}:score"


def tiny_ppo(**overrides) -> dict:
    """A `ppo:` recipe section small enough for a tiny model: 2 steps of 4 prompts, 6 new tokens, a
    checkpoint every step. `overrides` replace its keys; a `training` mapping is merged into its own."""
    training = {"save_steps": 1, **overrides.pop("training", {})}
    return {"steps": 2, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1, "max_new_tokens": 6,
            "max_prompt_tokens": 256, **overrides, "training": training}


def run_cli(*args, cwd, env_extra: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """`rlhf-ads ARGS` as a subprocess, offline."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", **(env_extra or {}))
    return subprocess.run([RLHF_ADS, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def launch_two_ranks(script: Path, *args: str, cwd: Path, deepspeed_config: str | None = None,
                     fingerprints: Path | None = None) -> subprocess.CompletedProcess:
    """`accelerate launch` of `script ARGS` in two CPU processes forming a gloo group: plain data parallel, or
    DeepSpeed with `deepspeed_config` (a file in recipes/accelerate/). With `fingerprints`, every rank writes
    a hash of its trainable parameters there. Asserts the launch succeeded."""
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}  # it would turn DeepSpeed off
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    if fingerprints is not None:
        env[FINGERPRINT_ENV] = str(fingerprints)
    if deepspeed_config:
        env["DS_ACCELERATOR"] = "cpu"
        launcher = ["--config_file", str(REPO / "recipes/accelerate" / deepspeed_config)]
    else:
        env["ACCELERATE_USE_CPU"] = "true"
        launcher = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                    "--dynamo_backend", "no"]
    done = subprocess.run([ACCELERATE, "launch", *launcher, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return done
