"""Child process: our PPO stage (rlhf_ads.ppo.trainer.run) on the benchmark's work spec, timed per phase.

    python benchmarks/run_ours.py --spec spec.json --dtype fp32 --result ours-fp32.json --workdir DIR

Phases are timed from outside by wrapping module-level functions of ppo/trainer.py and ppo/update.py
(no library hooks):
generation = sample; rollout_logprobs = policy + reference log-prob passes; rollout_values = value pass;
reward = the reward mix (a learned reward model on the same base); train_forward / backward / optimizer
= the PPO update.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import PhaseTimer, grad_phase, peak_rss_bytes, steady_state, write_result  # noqa: E402


# mode -> what it sets beside the stage's defaults: ppo.critic, ppo.sampling, ppo.compile,
# ppo.training.gradient_checkpointing
MODES = {"defaults": {}, "checkpointed": {"gradient_checkpointing": True}, "adapter-critic": {"critic": "adapter"},
         "shared-critic": {"critic": "shared"}, "unmerged-sampling": {"sampling": "adapters"},
         "compiled": {"compile": "always"}}


def build_recipe(spec: dict, dtype: str, workdir: Path, mode: str = "defaults"):
    """A recipe equal in work to the peer's: fresh LoRA policy (reference = base with the adapter off), the
    stage's critic (here, with no LoRA reward model to start from: the value head on the policy's trunk), a
    learned reward model on the same base, one PPO epoch. Mode `checkpointed` recomputes layer activations in
    the backward pass (ppo.training.gradient_checkpointing); `adapter-critic` gives the value function its own
    LoRA adapter (ppo.critic: adapter), `shared-critic` the value head on the policy's trunk (ppo.critic: shared);
    `unmerged-sampling` decodes rollouts through the adapters instead of merged weights (ppo.sampling: adapters)."""
    from rlhf_ads.config import (DataSource, LoraSettings, ModelConfig, PPOStageConfig, PPOTrainingSettings, Recipe,
                                 RewardSpec)

    lora = spec["lora"]
    chosen = MODES[mode]
    training = PPOTrainingSettings(learning_rate=spec["learning_rate"], save_steps=10 ** 6,
                                   gradient_checkpointing=chosen.get("gradient_checkpointing", False))
    ppo = PPOStageConfig(prompts=DataSource(spec["prompts"]), steps=spec["steps"], batch_size=spec["batch_size"],
                         mini_batch_size=spec["mini_batch_size"], ppo_epochs=1, max_new_tokens=spec["new_tokens"],
                         temperature=spec["temperature"], top_p=1.0, log_samples=0, training=training,
                         critic=chosen.get("critic", "auto"), sampling=chosen.get("sampling", "auto"),
                         compile=chosen.get("compile", "auto"))
    reward = RewardSpec(function="reward_model", name="rm",
                        kwargs={"path": spec["base_folder"], "dtype": dtype, "batch_size": 64})
    return Recipe(run_name="bench", output_dir=str(workdir), seed=spec["seed"],
                  model=ModelConfig(base=spec["base_folder"], dtype=dtype, use_lora=True,
                                    lora=LoraSettings(r=lora["r"], alpha=lora["alpha"])),
                  ppo=ppo, rewards=[reward])


def install_timers(timer: PhaseTimer, prompts_seen: list) -> None:
    """Wrap the trainer's phases; record prompt ids and tensor widths per step."""
    import rlhf_ads.modeling as modeling
    import rlhf_ads.ppo.trainer as trainer
    import rlhf_ads.ppo.update as update
    from rlhf_ads.rewards import CompositeReward

    def record_prompts(shapes, result, args, kwargs):
        ids, mask = result[0], result[1]
        prompts_seen.append([row[m.bool()].tolist() for row, m in zip(ids, mask)])
        shapes["prompt_width"] = ids.shape[1]

    def record_rollout(shapes, rollout, args, kwargs):
        shapes["response_width"] = rollout.response.shape[1]
        shapes["response_tokens"] = int(rollout.response_mask.sum())
        shapes["shared_prefix"] = rollout.shared_prefix

    def record_reward_tokens(shapes, ids, args, kwargs):
        shapes["reward_tokens"] = shapes.get("reward_tokens", 0) + len(ids) * max(map(len, ids))

    timer.wrap(trainer, "encode_prompts", None, observe=record_prompts)
    timer.wrap(trainer, "sample", "generation", observe=record_rollout)
    timer.wrap(trainer, "response_logprobs", "rollout_logprobs")  # the reference pass
    for name, no_grad_phase in (("response_logprobs", "rollout_logprobs"), ("response_values", "rollout_values"),
                                ("response_stats", "rollout_logprobs")):  # the policy's and critic's passes
        timer.wrap(update, name, grad_phase("train_forward", no_grad_phase))
    timer.wrap(CompositeReward, "score", "reward")
    timer.wrap(modeling, "encode_for_scoring", None, observe=record_reward_tokens)
    timer.wrap(torch.Tensor, "backward", "backward")
    timer.wrap(torch.optim.AdamW, "step", "optimizer")


def time_steps(timer: PhaseTimer) -> None:
    """Close a timer step around every call of trainer.ppo_step."""
    import rlhf_ads.ppo.trainer as trainer

    original = trainer.ppo_step

    def timed_step(*args, **kwargs):
        start = time.perf_counter()
        metrics = original(*args, **kwargs)
        timer.end_step(time.perf_counter() - start)
        return metrics

    trainer.ppo_step = timed_step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], required=True)
    parser.add_argument("--mode", choices=sorted(MODES), default="defaults")
    parser.add_argument("--result", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    torch.manual_seed(spec["seed"])
    import rlhf_ads.ppo.trainer as trainer

    timer, prompts_seen = PhaseTimer(), []
    install_timers(timer, prompts_seen)
    time_steps(timer)
    load_before, started = os.getloadavg()[0], time.perf_counter()
    metrics = trainer.run(build_recipe(spec, args.dtype, Path(args.workdir), args.mode))
    total = time.perf_counter() - started
    write_result(args.result, {
        "framework": "ours", "mode": args.mode, "dtype": args.dtype, "steps": timer.steps,
        **steady_state(timer.steps, spec["batch_size"], spec["warmup"]),
        "peak_rss_bytes": peak_rss_bytes(), "wall_s": total, "timers_missing": timer.missing,
        "threads": torch.get_num_threads(),
        "same_prompts": prompts_seen == spec["step_prompts"],
        "final_metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}}, load_before)


if __name__ == "__main__":
    main()
