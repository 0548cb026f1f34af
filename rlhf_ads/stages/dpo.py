"""Stage `dpo`: Direct Preference Optimization (Rafailov et al. 2023, arXiv:2305.18290) with TRL's DPOTrainer,
directly on the designer preferences the reward stage learns from: no reward model, no sampling. The policy starts
from the SFT adapter, which also stays, frozen, as the reference.

Writes <run>/dpo/: the PEFT adapter + tokenizer, metrics.json (loss, held-out accuracy of the implicit reward
beta * log(pi / pi_ref), wall time, peak memory), train_log.jsonl; checkpoints under dpo/checkpoints/.
"""

from __future__ import annotations

import json
import time

import datasets
from trl import DPOConfig, DPOTrainer

from rlhf_ads.config import Recipe
from rlhf_ads.data import data_options, load_rows, message_text, render_row_prompt
from rlhf_ads.peak_memory import peak_memory_metrics, reset_peak_memory
from rlhf_ads.processes import is_main_process
from rlhf_ads.seeding import seed_everything
from rlhf_ads.stages.common import (keep_trainable_dtype, loss_curve, sample_rows, start_tracking, train, trainer_args,
                                    write_stage_outputs)
from rlhf_ads.stages.policy import load_policy, prompt_for_trl, save_policy, sft_adapter_dir

STAGE = "dpo"


def preference_dataset(rows: list[dict], tokenizer) -> datasets.Dataset:
    """TRL's preference format from validated preference rows: the rendered prompt (a brief through the chat
    template, or the row's prompt) and the chosen and rejected ads as text (TRL appends EOS, as SFT trains)."""
    return datasets.Dataset.from_dict({
        "prompt": [prompt_for_trl(render_row_prompt(r, tokenizer), tokenizer) for r in rows],
        "chosen": [message_text(r["chosen"]) for r in rows],
        "rejected": [message_text(r["rejected"]) for r in rows]})


def run(recipe: Recipe) -> dict:
    cfg, training = recipe.dpo, recipe.dpo.training
    out_dir = recipe.stage_dir(STAGE)
    reset_peak_memory()
    seed_everything(recipe.seed)
    # 1. policy: the SFT adapter, trainable (TRL copies it into the frozen reference)
    model, tokenizer = load_policy(recipe, sft_adapter_dir(recipe, cfg.sft, STAGE), STAGE)
    # 2. the designer preferences
    train_rows = sample_rows(load_rows(cfg.train.path, "preferences", **data_options(cfg.train, out_dir)),
                             training.max_train_rows, recipe.seed)
    eval_rows = sample_rows(load_rows(cfg.eval.path, "preferences", **data_options(cfg.eval, out_dir)),
                            training.max_eval_rows, recipe.seed)
    # 3. train with TRL, resuming when asked
    args = trainer_args(DPOConfig, training, out_dir, recipe, beta=cfg.beta, loss_type=[cfg.loss_type],
                        max_length=training.max_length, disable_dropout=True, dataset_num_proc=None)
    trainer = DPOTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=preference_dataset(train_rows, tokenizer),
                         eval_dataset=preference_dataset(eval_rows, tokenizer))
    keep_trainable_dtype(trainer, recipe.model.dtype)
    tracker = start_tracking(trainer, training, recipe, STAGE, out_dir)
    started = time.perf_counter()
    train(trainer, training, out_dir)
    train_seconds = time.perf_counter() - started
    # 4. held-out pairs: does the implicit reward rank them as the designers did?
    held_out = trainer.evaluate()
    losses = loss_curve(trainer)
    metrics = {"dpo/train_loss_first": losses[0] if losses else None, "dpo/train_loss_last": losses[-1] if losses else None,
               "dpo/eval_loss": held_out["eval_loss"], "dpo/eval_accuracy": held_out.get("eval_rewards/accuracies"),
               "dpo/eval_margin": held_out.get("eval_rewards/margins"), "dpo/train_pairs": len(train_rows),
               "dpo/eval_pairs": len(eval_rows), "dpo/steps": trainer.state.global_step,
               "dpo/train_seconds": round(train_seconds, 1), **peak_memory_metrics(STAGE)}
    # 5. the adapter for `evaluate`
    save_policy(trainer, tokenizer, out_dir)
    write_stage_outputs(out_dir, metrics, recipe, trainer, tracker, stage=STAGE)
    if is_main_process():
        print(json.dumps(metrics, indent=2))
    return metrics
