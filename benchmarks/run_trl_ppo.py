"""Child process: the peer, TRL 1.12's `trl.experimental.ppo.PPOTrainer`, on the benchmark's work spec.

Runs in its own virtualenv (trl==1.12.0, `make bench` builds it), so it imports no rlhf_ads code.

    python benchmarks/run_trl_ppo.py --spec spec.json --dtype fp32 --mode full|lora --result r.json --workdir DIR

mode full: four full models (policy, reference, value, reward), TRL's default.
mode lora: `peft_config` on the policy; the reference is the policy with its adapter disabled.
Same phases as run_ours.py, timed by wrapping the trainer module's functions.
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

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_models(spec: dict, dtype: str, mode: str):
    """(tokenizer, policy, reference or None, value, reward), all from the same base folder.
    The value and reward models get fresh random score heads (seeded)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    folder, torch_dtype = spec["base_folder"], DTYPES[dtype]
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    tokenizer.pad_token = spec["pad_token"]
    torch.manual_seed(spec["seed"])

    def causal():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)

    def scorer():
        model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch_dtype, num_labels=1)
        model.config.pad_token_id = tokenizer.pad_token_id
        return model

    policy = causal()
    reference = causal() if mode == "full" else None
    return tokenizer, policy, reference, scorer(), scorer()


def ppo_config(spec: dict, workdir: Path):
    """PPOConfig doing the same work as our recipe: batch B in minibatches of M (one optimizer step each),
    one PPO epoch, `new_tokens` sampled at the same temperature, stopping at EOS."""
    from trl.experimental.ppo import PPOConfig

    batch = spec["batch_size"]
    return PPOConfig(
        output_dir=str(workdir), per_device_train_batch_size=batch, gradient_accumulation_steps=1,
        num_mini_batches=batch // spec["mini_batch_size"], num_ppo_epochs=1, total_episodes=spec["steps"] * batch,
        local_rollout_forward_batch_size=batch, response_length=spec["new_tokens"],
        temperature=spec["temperature"], stop_token="eos", missing_eos_penalty=1.0,
        learning_rate=spec["learning_rate"], seed=spec["seed"], num_sample_generations=0,
        report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, bf16=False, fp16=False)


def install_timers(timer: PhaseTimer, trainer_module, value_model) -> None:
    """Wrap the PPO module's phases; record tensor widths per step."""

    def record_generation(shapes, result, args, kwargs):
        query_responses = result[0]
        shapes["prompt_width"] = args[1].shape[1]
        shapes["response_width"] = query_responses.shape[1] - args[1].shape[1]

    def reward_or_value(args, kwargs):
        return "rollout_values" if args[0] is value_model else "reward"

    def record_scored_tokens(shapes, result, args, kwargs):
        if args[0] is not value_model:
            shapes["reward_tokens"] = shapes.get("reward_tokens", 0) + args[1].numel()

    timer.wrap(trainer_module, "batch_generation", "generation", observe=record_generation)
    timer.wrap(trainer_module, "forward", grad_phase("train_forward", "rollout_logprobs"))
    timer.wrap(trainer_module, "get_reward", reward_or_value, observe=record_scored_tokens)
    timer.wrap(torch.Tensor, "backward", "backward")
    timer.wrap(torch.optim.AdamW, "step", "optimizer")


def step_callback(timer: PhaseTimer):
    """A TrainerCallback closing one timer step at every PPO update (on_step_end)."""
    from transformers import TrainerCallback

    class StepTimes(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            timer.end_step(now - self.last)
            self.last = now

    return StepTimes()


def ordered_dataloader(spec: dict, tokenizer):
    """The spec's prompts, one step's batch after another, in order (TRL would shuffle them)."""
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    rows = [{"input_ids": ids} for step in spec["step_prompts"] for ids in step]
    return DataLoader(rows, batch_size=spec["batch_size"], shuffle=False, drop_last=True,
                      collate_fn=DataCollatorWithPadding(tokenizer))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--dtype", choices=list(DTYPES), required=True)
    parser.add_argument("--mode", choices=["full", "lora"], required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    from datasets import Dataset
    from peft import LoraConfig
    from trl.experimental.ppo import PPOTrainer
    from trl.experimental.ppo import ppo_trainer as trainer_module

    load_before, started = os.getloadavg()[0], time.perf_counter()
    tokenizer, policy, reference, value, reward = load_models(spec, args.dtype, args.mode)
    lora = spec["lora"]
    peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=0.0, target_modules="all-linear",
                             task_type="CAUSAL_LM") if args.mode == "lora" else None
    dataset = Dataset.from_dict({"input_ids": [ids for step in spec["step_prompts"] for ids in step]})
    timer = PhaseTimer()
    install_timers(timer, trainer_module, value)
    trainer = PPOTrainer(args=ppo_config(spec, Path(args.workdir)), processing_class=tokenizer, model=policy,
                         ref_model=reference, reward_model=reward, value_model=value, train_dataset=dataset,
                         eval_dataset=dataset, peft_config=peft_config, callbacks=[step_callback(timer)])
    trainer.dataloader = ordered_dataloader(spec, tokenizer)
    load_s = time.perf_counter() - started
    trainer.train()
    write_result(args.result, {
        "framework": "trl-1.12", "mode": args.mode, "dtype": args.dtype, "steps": timer.steps,
        **steady_state(timer.steps, spec["batch_size"], spec["warmup"]),
        "peak_rss_bytes": peak_rss_bytes(), "load_s": load_s, "wall_s": time.perf_counter() - started,
        "timers_missing": timer.missing, "threads": torch.get_num_threads()}, load_before)


if __name__ == "__main__":
    main()
