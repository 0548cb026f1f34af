"""What the online stages share (grpo, rloo: thin modules on TRL's GRPOTrainer and RLOOTrainer).

    1. policy     the SFT adapter, trainable, on the recipe's base (TRL copies it into the frozen reference)
    2. prompts    the prompt source PPO samples from (ppo.prompts unless the stage names its own), rendered
    3. rewards    one TRL reward function per component of the recipe's mix, with the recipe's weights
    4. train      each step samples num_generations completions for each of prompts_per_step prompts, scores them,
                  and takes num_iterations optimizer steps on them; validation curves with eval_every
    5. save       the adapter in <run>/<stage>/, metrics.json (reward, KL, validation, wall time, peak memory)

Writes <run>/<stage>/: the PEFT adapter + tokenizer, metrics.json, train_log.jsonl (per step: reward,
rewards/<component>/mean, reward/<component> raw, kl, completion lengths; <stage>/eval/*); checkpoints/.
"""

from __future__ import annotations

import json
import time

from rlhf_ads import processes
from rlhf_ads.config import Recipe
from rlhf_ads.data import data_options, load_prompts, render_row_prompt
from rlhf_ads.errors import ConfigError
from rlhf_ads.evaluation.validation import ValidationPrompts
from rlhf_ads.peak_memory import peak_memory_metrics, reset_peak_memory
from rlhf_ads.rewards import CompositeReward
from rlhf_ads.seeding import seed_everything
from rlhf_ads.stages.common import keep_trainable_dtype, start_tracking, train, trainer_args, write_stage_outputs
from rlhf_ads.stages.online_rewards import NormalizationState, prompt_dataset, trl_reward_functions
from rlhf_ads.stages.online_validation import ValidationCallback, sampling_steps
from rlhf_ads.stages.policy import load_policy, prompt_for_trl, save_policy, sft_adapter_dir


def run_online(recipe: Recipe, stage: str, config_class, trainer_class, **algorithm) -> dict:
    """Train `stage` (grpo or rloo) with TRL's `trainer_class` and `config_class`; `algorithm`: the config's
    arguments only that algorithm has. Returns the stage's metrics."""
    cfg = getattr(recipe, stage)
    training, out_dir = cfg.training, recipe.stage_dir(stage)
    reset_peak_memory()
    seed_everything(recipe.seed)
    if not recipe.rewards:
        raise ConfigError(f"{stage} needs at least one reward: add a `rewards:` list to the recipe "
                          "(e.g. - {function: length_limit})")
    # 1. policy: the SFT adapter, trainable
    model, tokenizer = load_policy(recipe, sft_adapter_dir(recipe, cfg.sft, stage), stage)
    # 2. prompts, from the source PPO samples from unless the stage names its own
    source = cfg.prompts or recipe.ppo.prompts
    rows = load_prompts(source.path, **data_options(source, out_dir))
    dataset = prompt_dataset([prompt_for_trl(render_row_prompt(r, tokenizer), tokenizer) for r in rows])
    # 3. the reward mix: one TRL reward function per component, the recipe's weights
    rewards = CompositeReward.from_specs(recipe.rewards)
    reward_funcs, reward_weights = trl_reward_functions(rewards, rows)
    # 4. train, resuming when asked
    per_device = _completions_per_micro_batch(cfg, stage)
    args = trainer_args(config_class, training, out_dir, recipe, max_steps=cfg.steps * cfg.num_iterations,
                        per_device_train_batch_size=per_device, num_generations=cfg.num_generations,
                        max_completion_length=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                        beta=cfg.beta, epsilon=cfg.epsilon, num_iterations=cfg.num_iterations,
                        reward_weights=reward_weights, use_vllm=False, disable_dropout=True, log_completions=False,
                        **algorithm)
    trainer = trainer_class(model=model, reward_funcs=reward_funcs, args=args, train_dataset=dataset,
                            processing_class=tokenizer)
    keep_trainable_dtype(trainer, recipe.model.dtype)
    if cfg.eval_every:
        prompts = ValidationPrompts(cfg.eval_prompts or recipe.ppo.eval_prompts,
                                    cfg.eval_num_prompts or recipe.ppo.eval_num_prompts, tokenizer, out_dir,
                                    recipe.evaluate.max_new_tokens)
        trainer.add_callback(ValidationCallback(trainer, prompts, rewards, stage, cfg))
    tracker = start_tracking(trainer, training, recipe, stage, out_dir)
    started = time.perf_counter()
    train(trainer, training, out_dir, extra_state=NormalizationState(rewards))
    sampled_steps = sampling_steps(trainer.state.global_step, cfg.num_iterations)
    metrics = {**online_metrics(trainer.state.log_history, stage, [c.name for c in rewards.components]),
               f"{stage}/steps": sampled_steps, f"{stage}/optimizer_steps": trainer.state.global_step,
               f"{stage}/completions": sampled_steps * cfg.completions_per_step,
               f"{stage}/train_seconds": round(time.perf_counter() - started, 1), **peak_memory_metrics(stage)}
    # 5. the adapter for `evaluate`, metrics and the log
    save_policy(trainer, tokenizer, out_dir)
    write_stage_outputs(out_dir, metrics, recipe, trainer, tracker, stage=stage)
    if processes.is_main_process():
        print(json.dumps(metrics, indent=2))
    return metrics


def _completions_per_micro_batch(cfg, stage: str) -> int:
    """TRL's per_device_train_batch_size (completions per forward pass) for completions_per_step completions a
    step over training.grad_accum micro-batches on every process."""
    shards = cfg.training.grad_accum * processes.world_size()
    if cfg.completions_per_step % shards:
        raise ConfigError(f"{stage}: prompts_per_step x num_generations ({cfg.completions_per_step}) must split "
                          f"evenly over training.grad_accum x processes ({shards})")
    return cfg.completions_per_step // shards


def online_metrics(log_history: list[dict], stage: str, components: list[str]) -> dict[str, float]:
    """From the trainer's log: <stage>/reward at the first and last logged steps, <stage>/kl at the last,
    reward/<component> (raw means) at the last, and the last validation's <stage>/eval/* metrics."""
    logged = [entry for entry in log_history if "reward" in entry]
    validations = [entry for entry in log_history if f"{stage}/eval/reward" in entry]
    metrics = {}
    if logged:
        first, last = logged[0], logged[-1]
        metrics.update({f"{stage}/reward_first": first["reward"], f"{stage}/reward_last": last["reward"]})
        if last.get("kl") is not None:
            metrics[f"{stage}/kl_last"] = last["kl"]
        metrics.update({f"reward/{name}": last[f"reward/{name}"] for name in components
                        if last.get(f"reward/{name}") is not None})
    if validations:
        metrics.update({k: v for k, v in validations[-1].items() if k.startswith(f"{stage}/eval/")})
    return metrics
