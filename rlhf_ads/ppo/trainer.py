"""Stage `ppo`: PPO for language models against any mix of rewards, with a KL leash to the SFT policy.

One base model carries the policy, reference and value adapters (ppo/models.py). Each step:

    1. rollout       sample responses for a batch of prompts; cut at the first stop token
    2. score         the reward mix on the texts; missing-EOS penalty
    3. old stats     policy/reference log-probs and values on the sampled sequences, from the forward passes
                     the update runs (one pass for policy and values with ppo.critic: shared); the update's
                     first micro-batch runs its training forward here and keeps its graph (ppo/update.py)
    4. rewards       per-token -beta * KL, the score (minus the batch's mean with center_scores) added at the
                     last response token
    5. advantages    GAE, whitened per batch
    6. update        ppo_epochs over shuffled minibatches: clipped policy + clipped value loss (value loss
                     only for the first ppo.critic_warmup_steps steps; one backward with a shared critic)
    7. log, KL controller, checkpoint

Writes <run>/ppo/: policy/ and value/ adapters, value_head.safetensors, metrics.jsonl,
samples.jsonl, metrics.json; checkpoints/ (atomic) for --resume; per-step metrics and sample tables
also go to `ppo.training.report_to` (rlhf_ads.tracking).

Under `accelerate launch` with N processes each rank rolls out its own `batch_size` prompts (its slice
of one seeded permutation), samples with its own seed, and averages gradients with the others before
every optimizer step (ppo/distributed.py), or, with a DeepSpeed config, trains in a ZeRO engine
(ppo/optimization.py); the main process alone writes files and logs, with metrics averaged over ranks.
The KL controller sees the averaged KL, so it stays equal on every rank.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin, InitProcessGroupKwargs
from tqdm.auto import tqdm

from rlhf_ads import checkpoint, processes, tracking
from rlhf_ads.config import Recipe
from rlhf_ads.config_schema import to_dict
from rlhf_ads.data import render_row_prompt, reward_columns
from rlhf_ads.data.gold import mean_gold
from rlhf_ads.errors import RlhfAdsError
from rlhf_ads.model_card import write_model_card
from rlhf_ads.modeling import DTYPES, resolve_dtype
from rlhf_ads.ppo import distributed as dist
from rlhf_ads.ppo.compiled import compile_wanted
from rlhf_ads.ppo.kl import kl_estimate, make_controller
from rlhf_ads.ppo.losses import gae, masked_whiten, token_rewards
from rlhf_ads.ppo.models import POLICY, VALUE, ActorCritic, build_actor_critic
from rlhf_ads.ppo.optimization import make_optimization
from rlhf_ads.ppo.prompts import load_prompt_rows
from rlhf_ads.ppo.update import keep_first_pass, old_policy_stats, run_update, update_plan
from rlhf_ads.ppo.rollout import encode_prompts, response_logprobs, sample
from rlhf_ads.ppo.validation import BEST, EVAL_LOG, Validation
from rlhf_ads.rewards import CompositeReward
from rlhf_ads.seeding import seed_everything
from rlhf_ads.storage import atomic_write_text

log = logging.getLogger(__name__)
STAGE = "ppo"


class KLBlowUp(RlhfAdsError):
    """Mean KL passed ppo.kl.stop_above."""


def batch_indices(n_rows: int, batch_size: int, step: int, seed: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """Rows of one step for one rank: a fresh seeded permutation per pass over the data, so the position is
    just the step; the step's batch_size * world_size rows are split between ranks, rank r taking slice r."""
    global_batch = batch_size * world_size
    if n_rows < global_batch:
        raise RlhfAdsError(f"ppo needs at least batch_size x processes = {global_batch} prompts, got {n_rows}; "
                           "lower ppo.batch_size or use fewer processes")
    per_pass = max(1, n_rows // global_batch)
    permutation = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed + step // per_pass)).tolist()
    start = (step % per_pass) * global_batch + rank * batch_size
    return permutation[start:start + batch_size]


class PhaseClock:
    """Wall seconds of each phase of a step, as metrics `ppo/time/<phase>`."""

    def __init__(self, started: float, first_phase: str):
        self.last, self.seconds = started, {}
        self.lap(first_phase)

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[f"ppo/time/{phase}"] = now - self.last
        self.last = now


def without_timings(metrics: dict) -> dict:
    """The metrics a seeded run reproduces exactly: all but the wall-clock ones."""
    return {k: v for k, v in metrics.items() if k != "ppo/samples_per_second" and not k.startswith("ppo/time/")}


def samples_merged(recipe: Recipe, zero3: bool) -> bool:
    """Whether rollouts decode from merged weights (ppo.sampling): 'auto' merges unless the base is 4-bit (the
    merged copy would be the dequantized model), the roles are separate models, or ZeRO-3 partitions the weights."""
    cfg = recipe.ppo
    unsupported = "ppo.models: separate" if cfg.models == "separate" else "DeepSpeed ZeRO-3" if zero3 else None
    if cfg.sampling == "merged" and unsupported:
        raise RlhfAdsError(f"ppo.sampling: merged does not run with {unsupported}; use ppo.sampling: adapters")
    if cfg.sampling == "auto":
        return unsupported is None and not recipe.model.load_in_4bit
    return cfg.sampling == "merged"


def _default_stage_dir(recipe: Recipe, configured: str | None, stage: str) -> Path | None:
    path = Path(configured) if configured else recipe.stage_dir(stage)
    if configured and not (path / "adapter_config.json").is_file():
        raise RlhfAdsError(f"ppo.sft '{path}' holds no PEFT adapter (adapter_config.json); pass the sft stage's "
                           "output folder")
    return path if (path / "adapter_config.json").is_file() else None


def run(recipe: Recipe) -> dict:
    cfg, training = recipe.ppo, recipe.ppo.training
    out_dir = recipe.stage_dir(STAGE)
    # under `accelerate launch`: joins the process group (gloo on CPUs, NCCL on GPUs) and picks the device;
    # the accumulation plugin stands for a DeepSpeed config's `gradient_accumulation_steps: auto`
    backend = processes.deepspeed_cpu_backend()
    accelerator = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(backend=backend)] if backend else None,
                              gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=training.grad_accum))
    main = processes.is_main_process()
    seed_everything(recipe.seed)
    if not recipe.rewards:
        raise RlhfAdsError("ppo needs at least one reward: add a `rewards:` list to the recipe "
                           "(e.g. - {function: length_limit})")
    rows = load_prompt_rows(cfg.prompts, out_dir)
    reward_dir = recipe.stage_dir(recipe.reward.output)
    actor_critic = build_actor_critic(recipe, _default_stage_dir(recipe, cfg.sft, "sft"),
                            reward_dir if reward_dir.is_dir() else None)
    rewards = CompositeReward.from_specs(recipe.rewards)
    groups = actor_critic.trainable_parameters()
    params = [p for g in groups.values() for p in g]
    dist.broadcast_parameters(params)  # every rank starts from rank 0's adapters and value head
    if processes.world_size() > 1:
        seed_everything(recipe.seed + processes.rank())  # each rank samples its own responses
    optimization = make_optimization(accelerator, actor_critic, cfg)
    if samples_merged(recipe, getattr(optimization, "zero3", False)):
        actor_critic.merge_for_sampling(DTYPES[resolve_dtype(recipe.model.dtype)])
    if compile_wanted(recipe, under_deepspeed=hasattr(optimization, "engine")):
        log.info("ppo.compile: %d transformer layers compile on their first pass", actor_critic.compile())
    kl_ctl = make_controller(cfg.kl)
    start_step = 0
    if main:
        checkpoint.remove_partials(out_dir / "checkpoints")
    processes.barrier()
    if training.resume and (latest := checkpoint.newest(out_dir / "checkpoints")) is not None:
        start_step = _load_checkpoint(latest, actor_critic, optimization, kl_ctl, rewards)
        log.info("resumed from %s at step %d", latest, start_step)
    if main:
        _truncate_logs(out_dir, start_step)
    tracker = tracking.RunTracker.start(recipe, STAGE, out_dir, training.report_to)
    validation = Validation(recipe, actor_critic.tokenizer, rewards, out_dir, start_step) if cfg.eval_every else None
    metrics = {}
    try:
        if validation is not None and start_step == 0:  # where the curve starts: the SFT policy
            _validate(validation, 0, actor_critic, optimization, out_dir, tracker)
        for step in tqdm(range(start_step, cfg.steps), desc="ppo", initial=start_step, total=cfg.steps,
                         disable=not main):
            metrics = ppo_step(recipe, actor_critic, optimization, kl_ctl, rewards, rows, step, out_dir, tracker)
            if validation is not None and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
                metrics.update(_validate(validation, step + 1, actor_critic, optimization, out_dir, tracker))
            if (step + 1) % training.save_steps == 0 or step + 1 == cfg.steps:
                _save_checkpoint(out_dir, step + 1, actor_critic, optimization, kl_ctl, rewards, training.save_total_limit)
            if cfg.kl.stop_above is not None and metrics["ppo/kl"] > cfg.kl.stop_above:
                _save_checkpoint(out_dir, step + 1, actor_critic, optimization, kl_ctl, rewards, training.save_total_limit)
                raise KLBlowUp(f"mean KL {metrics['ppo/kl']:.2f} passed ppo.kl.stop_above={cfg.kl.stop_above} at "
                               f"step {step + 1}; the run is saved in {out_dir}/checkpoints. Lower ppo.training.learning_rate, "
                               "raise ppo.kl.coef or set ppo.kl.target, then resume with --resume")
        with optimization.full_weights():  # a collective under ZeRO-3: every rank enters
            tracking.dump_parameter_fingerprint(STAGE, _named_trainable(actor_critic), cfg.steps - start_step)
            if main:
                _save_final(out_dir, actor_critic)
        if main:
            atomic_write_text(out_dir / "metrics.json",
                              json.dumps({"metrics": metrics, "config": to_dict(recipe)}, indent=2))
            for role in (POLICY, VALUE):
                write_model_card(out_dir / role, recipe, STAGE, metrics, role)
            tracker.summary(metrics, cfg.steps)
            if recipe.tracking.log_artifacts:
                name = f"{tracking.run_name(recipe, STAGE)}-adapters"
                tracker.log_artifact(tracking.stage_artifact_files(out_dir), name)
        processes.barrier()
    finally:
        tracker.finish()
    return metrics


def _validate(validation: Validation, step: int, actor_critic: ActorCritic, optimization, out_dir: Path,
              tracker: tracking.RunTracker) -> dict[str, float]:
    """Score the policy's greedy ads on the validation prompts (every rank, the same prompts); the main process
    logs ppo/eval/* at `step` (to the tracker and <ppo>/eval.jsonl) and keeps the policy in <ppo>/best/ when
    its proxy is the best so far."""
    with optimization.generation(), actor_critic.decoding():
        metrics = validation.score(actor_critic.sampler())
    with optimization.full_weights():  # a collective under ZeRO-3: every rank enters
        if processes.is_main_process():
            if validation.keep_if_best(step, metrics, actor_critic.save_weights):
                log.info("ppo step %d: best validation reward so far (%.3f), kept in %s", step,
                         metrics["ppo/eval/reward"], out_dir / BEST)
            _append(out_dir / EVAL_LOG, {"step": step, **metrics})
            tracker.log(metrics, step)
    log.info("ppo step %d: validation reward %.3f%s", step, metrics["ppo/eval/reward"],
             f", gold {metrics['ppo/eval/gold']:.3f}" if "ppo/eval/gold" in metrics else "")
    return metrics


def _named_trainable(actor_critic: ActorCritic):
    for role, params in actor_critic.trainable_parameters().items():
        yield from ((f"{role}.{i}", p) for i, p in enumerate(params))


def shares_prompt_start(cfg, actor_critic) -> bool:
    """ppo.share_prompt_start where it runs: not with gradient checkpointing (Hugging Face drops the cache in
    checkpointed layers) nor with compiled layers (each layer would recompile for the cache)."""
    return cfg.share_prompt_start and not cfg.training.gradient_checkpointing and not actor_critic.compiled


def ppo_step(recipe: Recipe, actor_critic: ActorCritic, optimization, kl_ctl, rewards: CompositeReward, rows: list[dict],
             step: int, out_dir: Path, tracker: tracking.RunTracker | None = None) -> dict:
    """One PPO step; returns its metrics, averaged over ranks (the main process appends them to
    metrics.jsonl and sends them, with a table of samples, to the tracker)."""
    cfg = recipe.ppo
    started = time.perf_counter()
    indices = batch_indices(len(rows), cfg.batch_size, step, recipe.seed, processes.rank(), processes.world_size())
    batch_rows = [rows[i] for i in indices]
    prompts = [render_row_prompt(r, actor_critic.tokenizer) for r in batch_rows]
    # 1. rollout with the policy (its merged copy, or through the adapter)
    query, query_mask, cut = encode_prompts(actor_critic.tokenizer, prompts, cfg.max_prompt_tokens)
    with optimization.generation(), actor_critic.decoding():
        rollout = sample(actor_critic.sampler(), actor_critic.tokenizer, query, query_mask,
                         max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                         kv_cache=cfg.kv_cache, compiled=actor_critic.compiled_decoding,
                         share_prompt_start=shares_prompt_start(cfg, actor_critic))
    timer = PhaseClock(started, "rollout")
    # 2. scores from the reward mix; responses that never stop are penalized
    columns = reward_columns(batch_rows)
    scored = rewards.score(rollout.texts, prompts, **columns)
    if rewards.observes_rollouts:  # every rank's ads, in rank order, so that every rank keeps the same window
        rewards.observe([text for texts in dist.gather_objects(rollout.texts) for text in texts])
    scores = torch.tensor(scored.total, dtype=torch.float32)
    if cfg.missing_eos_penalty is not None:
        scores = torch.where(rollout.contains_eos, scores, scores - cfg.missing_eos_penalty)
    timer.lap("score")
    # 3. old statistics from the forward the update runs: policy and reference log-probs, values
    train_policy = step >= cfg.critic_warmup_steps
    plan = update_plan(cfg)
    kept = keep_first_pass(cfg, actor_critic, optimization, rollout, plan) if train_policy else None
    with torch.no_grad():
        logprobs, values = old_policy_stats(cfg, actor_critic, optimization, rollout, kept)
        with actor_critic.reference_context():
            ref_logprobs = optimization.forward(
                lambda: response_logprobs(actor_critic.model, rollout, cfg.temperature))
    mask = rollout.response_mask
    timer.lap("old_stats")
    # 4. per-token rewards: -beta * KL, plus the score at the last response token
    kl = kl_estimate(logprobs, ref_logprobs, cfg.kl.estimator) * mask
    rewards_per_token = token_rewards(kl, scores - scores.mean() if cfg.center_scores else scores, mask,
                                      kl_ctl.value, cfg.whiten_rewards)
    # 5. advantages with GAE, whitened over the batch
    advantages, returns = gae(rewards_per_token, values, mask, cfg.gamma, cfg.lam)
    advantages = masked_whiten(advantages, mask) * mask
    # 6. PPO epochs over shuffled minibatches (value only during the critic warm-up)
    train_stats = run_update(cfg, actor_critic, optimization, rollout, logprobs, values, advantages, returns,
                          train_policy=train_policy, plan=plan, kept=kept)
    timer.lap("update")
    # 7. metrics, KL controller, samples
    elapsed = time.perf_counter() - started
    metrics = {"step": step + 1, **scored.metrics(), "ppo/score": scores.mean().item(), "ppo/kl": (kl.sum(1)).mean().item(),
               "ppo/response_length": mask.float().sum(1).mean().item(),
               "ppo/no_eos_fraction": 1.0 - rollout.contains_eos.float().mean().item(),
               "ppo/empty_fraction": sum(not t for t in rollout.texts) / len(rollout.texts),
               "ppo/prompts_cut": cut, "ppo/samples_per_second": cfg.batch_size / elapsed, **train_stats,
               **timer.seconds}
    if (gold := mean_gold(batch_rows, rollout.texts)) is not None:
        metrics["gold/utility"] = gold
    metrics = dist.average_metrics(metrics)
    kl_ctl.update(metrics["ppo/kl"], cfg.batch_size * processes.world_size())
    metrics["ppo/kl_coef"] = kl_ctl.value
    if processes.is_main_process():
        _append(out_dir / "metrics.jsonl", metrics)
        samples = [{"step": step + 1, "prompt_id": row.get("id") or row.get("brief_id"), "response": text, "score": score}
                   for row, text, score in list(zip(batch_rows, rollout.texts, scores.tolist()))[: cfg.log_samples]]
        for sample_row in samples:
            _append(out_dir / "samples.jsonl", sample_row)
        if tracker is not None:
            tracker.log(metrics, step + 1)
            tracker.log_samples([dict(s, prompt=p) for s, p in zip(samples, prompts)], step + 1)
    log.info("ppo step %d: score %.3f kl %.3f", step + 1, metrics["ppo/score"], metrics["ppo/kl"])
    return metrics


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _truncate_logs(out_dir: Path, step: int) -> None:
    """On (re)start, drop log lines of steps after the checkpoint we resume from."""
    for name in ("metrics.jsonl", "samples.jsonl", EVAL_LOG):
        path = out_dir / name
        if path.is_file():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))


def _save_checkpoint(out_dir: Path, step: int, actor_critic, optimization, kl_ctl, rewards, keep: int) -> None:
    """Every rank writes into one staging folder (its RNG state travels to the main process; under
    DeepSpeed each rank writes its ZeRO shards); the main process writes the adapters and the state,
    then renames the folder to checkpoints/checkpoint-<step> (checkpoint.py)."""
    root = out_dir / "checkpoints"
    staging = checkpoint.staging_folder(root)
    rng_per_rank = dist.gather_objects(checkpoint.rng_state())
    main = processes.is_main_process()
    if main:
        shutil.rmtree(staging, ignore_errors=True)  # a save that raised half-way
        staging.mkdir(parents=True)
    processes.barrier()
    trainer_state = optimization.save(staging)
    with optimization.full_weights():
        if main:
            actor_critic.save_weights(staging)
    if main:
        checkpoint.save_state(staging / "trainer.pt", {**trainer_state, "rng_per_rank": rng_per_rank})
        (staging / "state.json").write_text(json.dumps({"step": step, "kl": kl_ctl.state_dict(),
                                                        "rewards": rewards.state_dict()}))
        checkpoint.publish(staging, root / f"{checkpoint.PREFIX}{step}")
        checkpoint.prune(root, keep)
    processes.barrier()


def _load_checkpoint(folder: Path, actor_critic, optimization, kl_ctl, rewards) -> int:
    saved = checkpoint.load_state(folder / "trainer.pt")
    if not optimization.restores_weights:
        actor_critic.load_weights(folder)
    optimization.load(folder, saved)
    per_rank = saved["rng_per_rank"]
    if len(per_rank) != processes.world_size():
        log.warning("checkpoint saved with %d processes, resuming with %d: sampling will not repeat exactly",
                    len(per_rank), processes.world_size())
    checkpoint.set_rng_state(per_rank[processes.rank() % len(per_rank)])
    state = json.loads((folder / "state.json").read_text())
    kl_ctl.load_state_dict(state["kl"])
    rewards.load_state_dict(state["rewards"])
    return int(state["step"])


def _save_final(out_dir: Path, actor_critic: ActorCritic) -> None:
    actor_critic.save_weights(out_dir)
    actor_critic.tokenizer.save_pretrained(str(out_dir))
