"""Stage `sft`: supervised fine-tuning on brief -> ad copy with TRL's SFTTrainer, loss on the completion only.

Writes <run>/sft/: the PEFT adapter (or full model) + tokenizer, samples.jsonl (held-out briefs,
base vs SFT), metrics.json, train_log.jsonl; checkpoints under sft/checkpoints/.
"""

from __future__ import annotations

import json
import logging
import math
import time

import datasets
from trl import SFTConfig, SFTTrainer

from rlhf_ads.config import Recipe
from rlhf_ads.data import (data_options, load_prompts, load_rows, render_row_prompt, row_completion, row_id, row_target,
                           within_row_limit)
from rlhf_ads.generation import generate_completions
from rlhf_ads.modeling import load_base
from rlhf_ads.private_apis import compact_lm_head_on_cpus
from rlhf_ads.processes import is_main_process
from rlhf_ads.seeding import seed_everything
from rlhf_ads.stages.common import (keep_trainable_dtype, loss_curve, require_trainable, sample_rows,
                                    save_trained_model, start_tracking, train, trainer_args, write_stage_outputs)
from rlhf_ads.storage import atomic_write_text

log = logging.getLogger(__name__)
STAGE = "sft"


def tokenized_row(prompt: str, completion: str, tokenizer, max_length: int) -> dict[str, list[int]]:
    """input_ids = prompt + completion + EOS, at most max_length tokens, and completion_mask (1 on the
    completion and EOS). A long prompt loses its start (the brief's end and the chat header stay); a
    completion longer than max_length alone keeps its start."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    completion_ids = completion_ids[:max_length]
    prompt_ids = prompt_ids[len(prompt_ids) - (max_length - len(completion_ids)):] if max_length > len(completion_ids) else []
    return {"input_ids": prompt_ids + completion_ids, "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids)}


def prompt_completion_dataset(rows: list[dict], tokenizer, max_length: int) -> datasets.Dataset:
    """Tokenized prompt/completion rows for TRL's SFTTrainer (loss on completion_mask)."""
    return datasets.Dataset.from_list([tokenized_row(render_row_prompt(r, tokenizer), row_completion(r), tokenizer,
                                                     max_length) for r in rows])


def score_labelled_positions_only() -> None:
    """Make TRL's fused LM head (SFTTrainer's loss) project only the positions that have a label, on CPUs too.

    TRL does so on Triton devices; elsewhere it projects every position to keep tile shapes fixed for
    compilers (Neuron). Eager CPUs compile nothing, and in the quickstart's SFT 8 of 9 positions are prompt or
    padding, which the 49k-token head would otherwise project. Loss, gradients and logged metrics are
    unchanged (the same rows, projected in another order)."""
    if not compact_lm_head_on_cpus():
        log.info("this TRL has no switch for its compact LM head path; SFT projects every position")


def run(recipe: Recipe) -> dict:
    cfg, model_cfg = recipe.sft, recipe.model
    score_labelled_positions_only()
    out_dir = recipe.stage_dir(STAGE)
    seed_everything(recipe.seed)
    # 1. model: base (+ LoRA / QLoRA as the recipe says)
    require_trainable(model_cfg)
    lora = model_cfg.lora if model_cfg.use_lora else None
    model, tokenizer = load_base(model_cfg.base, dtype=model_cfg.dtype, load_in_4bit=model_cfg.load_in_4bit,
                                 lora=lora, cache_dir=model_cfg.cache_dir)
    # 2. data: validated rows -> prompt/completion
    train_rows = sample_rows(load_rows(cfg.train.path, "sft", **data_options(cfg.train, out_dir)),
                             cfg.training.max_train_rows, recipe.seed)
    eval_rows = sample_rows(load_rows(cfg.eval.path, "sft", **data_options(cfg.eval, out_dir)),
                            cfg.training.max_eval_rows, recipe.seed)
    # 3. train with TRL, resuming when asked
    args = trainer_args(SFTConfig, cfg.training, out_dir, recipe, completion_only_loss=True, packing=False,
                        max_length=cfg.training.max_length, dataset_num_proc=None)
    max_length = cfg.training.max_length
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=prompt_completion_dataset(train_rows, tokenizer, max_length),
                         eval_dataset=prompt_completion_dataset(eval_rows, tokenizer, max_length))
    keep_trainable_dtype(trainer, recipe.model.dtype)
    tracker = start_tracking(trainer, cfg.training, recipe, STAGE, out_dir)
    started = time.perf_counter()
    train(trainer, cfg.training, out_dir)
    train_seconds = time.perf_counter() - started
    # 4. held-out loss and perplexity
    eval_loss = trainer.evaluate()["eval_loss"]
    losses = loss_curve(trainer)
    metrics = {"sft/eval_loss": eval_loss, "sft/perplexity": math.exp(min(eval_loss, 50.0)),
               "sft/train_loss_first": losses[0] if losses else None, "sft/train_loss_last": losses[-1] if losses else None,
               "sft/train_rows": len(train_rows), "sft/train_seconds": round(train_seconds, 1),
               "sft/steps": trainer.state.global_step}
    # 5. save the adapter (or model) and tokenizer, and optionally a merged copy
    #    (files from the main process only; ZeRO-3 shards are gathered first)
    model = trainer.model
    save_trained_model(trainer, out_dir)
    if is_main_process():
        tokenizer.save_pretrained(out_dir)
        atomic_write_text(out_dir / "rlhf_ads_stage.json", json.dumps(
            {"stage": STAGE, "base": model_cfg.base, "dtype": model_cfg.dtype, "load_in_4bit": model_cfg.load_in_4bit}))
    if cfg.merge and hasattr(model, "merge_and_unload") and not model_cfg.load_in_4bit:
        merged = model.merge_and_unload()
        if is_main_process():
            merged.save_pretrained(out_dir / "merged")
            tokenizer.save_pretrained(out_dir / "merged")
        model = merged
    # 6. samples on held-out briefs: base vs SFT, within platform limits
    if cfg.num_samples:
        metrics.update(_compare_samples(recipe, model, tokenizer, out_dir))
    write_stage_outputs(out_dir, metrics, recipe, trainer, tracker, stage="sft")
    if is_main_process():
        print(json.dumps(metrics, indent=2))
    return metrics


def _compare_samples(recipe: Recipe, model, tokenizer, out_dir) -> dict:
    """Greedy ads for held-out briefs (or prompts) from the base (adapter disabled) and the SFT model; the
    within-limit rates count the rows with a platform and field."""
    cfg = recipe.sft
    samples = load_prompts(cfg.sample_briefs.path, **data_options(cfg.sample_briefs, out_dir))[: cfg.num_samples]
    prompts = [render_row_prompt(r, tokenizer) for r in samples]
    generate = dict(max_new_tokens=cfg.max_new_tokens, temperature=0.0, batch_size=cfg.training.batch_size)
    tuned = generate_completions(model, tokenizer, prompts, **generate)
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            base = generate_completions(model, tokenizer, prompts, **generate)
    else:
        base_model, _ = load_base(recipe.model.base, dtype=recipe.model.dtype, cache_dir=recipe.model.cache_dir)
        base = generate_completions(base_model, tokenizer, prompts, **generate)
    rows = []
    for sample, base_ad, sft_ad in zip(samples, base, tuned):
        platform, field, limit = row_target(sample)
        rows.append({"brief_id": row_id(sample), "platform": platform, "field": field, "max_chars": limit,
                     "base": base_ad, "base_within_limit": within_row_limit(base_ad, sample),
                     "sft": sft_ad, "sft_within_limit": within_row_limit(sft_ad, sample)})
    if is_main_process():
        atomic_write_text(out_dir / "samples.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    limited = [r for r in rows if r["max_chars"] is not None]
    rates = {f"{name}/within_limit_rate": sum(r[f"{name}_within_limit"] for r in limited) / len(limited)
             for name in ("sft", "base")} if limited else {}
    return {**rates, "sft/samples": len(rows)}
