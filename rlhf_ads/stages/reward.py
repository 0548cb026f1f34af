"""Stage `reward`: a pairwise Bradley-Terry reward model (TRL's RewardTrainer) or a pointwise
click-through model (binary cross-entropy on clicks/impressions, transformers' Trainer).

The scorer reads `scorer_text(context, ad, brief)`: the brief as one compact line, the ad's length (with
`limit_fit`, as a share of the brief's limit) and the ad (with `rater_column`, the context starts with the
pair's rater: one model of each designer's taste). Writes
<run>/<output>/: the adapter with its score head (or the full model), tokenizer,
rlhf_ads_scorer.json, metrics.json, train_log.jsonl; checkpoints under checkpoints/.
"""

from __future__ import annotations

import json
import statistics

import datasets
import torch
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import RewardConfig, RewardTrainer

from rlhf_ads.config import Recipe
from rlhf_ads.data import (SCORER_INPUT, Brief, data_options, load_rows, message_text, rater_context, rater_mean_scores,
                           row_completion, row_context, scorer_text)
from rlhf_ads.errors import DataError
from rlhf_ads.evaluation.metrics import click_log_loss, pairwise_accuracy, weighted_auc
from rlhf_ads.modeling import SCORER_META, encode_for_scoring, load_base, score_sequences
from rlhf_ads.processes import is_main_process
from rlhf_ads.seeding import seed_everything
from rlhf_ads.stages.common import (keep_trainable_dtype, loss_curve, require_trainable, sample_rows,
                                    save_trained_model, start_tracking, train, trainer_args, write_stage_outputs)
from rlhf_ads.storage import atomic_write_text


def load_scorer_for_training(recipe: Recipe):
    """(model, tokenizer, meta): an encoder classifier, or the causal base with a score head (+ LoRA/QLoRA)."""
    cfg, model_cfg = recipe.reward, recipe.model
    if cfg.backbone == "encoder":
        model, tokenizer = load_base(cfg.encoder, dtype=model_cfg.dtype, cache_dir=model_cfg.cache_dir,
                                     model_class=AutoModelForSequenceClassification, num_labels=1)
        meta = {"backbone": "encoder", "base": cfg.encoder}
    else:
        require_trainable(model_cfg)
        model, tokenizer = load_base(model_cfg.base, dtype=model_cfg.dtype, load_in_4bit=model_cfg.load_in_4bit,
                                     lora=model_cfg.lora if model_cfg.use_lora else None, cache_dir=model_cfg.cache_dir,
                                     model_class=AutoModelForSequenceClassification, num_labels=1)
        meta = {"backbone": "causal", "base": model_cfg.base, "load_in_4bit": model_cfg.load_in_4bit}
    tokenizer.padding_side = "right"
    return model, tokenizer, dict(meta, kind=cfg.kind, dtype=model_cfg.dtype,
                                  input=SCORER_INPUT if cfg.limit_fit else "brief_context")


def text_brief(row: dict, limit_fit: bool) -> Brief | None:
    """The brief whose limit the scorer text measures the ad against: None without limit_fit (or a brief)."""
    return row.get("brief") if limit_fit else None


def pair_texts(row: dict, rater_column: str | None = None, limit_fit: bool = False) -> tuple[str, str]:
    """(chosen, rejected) scorer texts; with rater_column, the context names the row's rater."""
    context = rater_context(row_context(row), str(row[rater_column]) if rater_column else None)
    brief = text_brief(row, limit_fit)
    return (scorer_text(context, message_text(row["chosen"]), brief),
            scorer_text(context, message_text(row["rejected"]), brief))


def pair_dataset(rows: list[dict], tokenizer, max_length: int, margin_column: str | None,
                 rater_column: str | None = None, limit_fit: bool = False) -> datasets.Dataset:
    """Pre-tokenized pairs in TRL's format: chosen_ids, rejected_ids (and margin)."""
    chosen, rejected = zip(*(pair_texts(r, rater_column, limit_fit) for r in rows))
    data = {"chosen_ids": encode_for_scoring(tokenizer, list(chosen), max_length),
            "rejected_ids": encode_for_scoring(tokenizer, list(rejected), max_length)}
    if margin_column:
        data["margin"] = [float(r[margin_column]) for r in rows]
    return datasets.Dataset.from_dict(data)


class PairRewardTrainer(RewardTrainer):
    """TRL's RewardTrainer whose `group_by_length` groups pairs by their longer side's token length
    (TRL's pairs carry chosen_ids/rejected_ids, not the input_ids transformers would measure)."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(dataset)
        lengths = [max(len(c), len(r)) for c, r in zip(dataset["chosen_ids"], dataset["rejected_ids"])]
        return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=lengths)


def raters_of(rows: list[dict], column: str, source: str) -> list[str]:
    """The sorted distinct raters in `column`; a row without one is a DataError naming the source and row."""
    for index, row in enumerate(rows):
        if row.get(column) in (None, ""):
            raise DataError(f"{source}: row {row.get('id', index)} has no '{column}' field, which reward.rater_column "
                            "names; give every pair its rater or unset rater_column")
    return sorted({str(row[column]) for row in rows})


def click_text(row: dict, limit_fit: bool = False) -> str:
    """The scorer text of one click-log row's ad."""
    return scorer_text(row_context(row), row["ad"], text_brief(row, limit_fit))


def click_dataset(rows: list[dict], tokenizer, max_length: int, limit_fit: bool = False) -> datasets.Dataset:
    """input_ids and labels = [clicks, impressions] per ad."""
    texts = [click_text(r, limit_fit) for r in rows]
    return datasets.Dataset.from_dict({"input_ids": encode_for_scoring(tokenizer, texts, max_length),
                                       "labels": [[float(r["clicks"]), float(r["impressions"])] for r in rows]})


def click_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Binomial negative log-likelihood per impression. logits: (B, 1); labels: (B, 2) = clicks, impressions."""
    logit = outputs.logits[:, 0].float()
    clicks, impressions = labels[:, 0], labels[:, 1]
    nll = -(clicks * torch.nn.functional.logsigmoid(logit) + (impressions - clicks) * torch.nn.functional.logsigmoid(-logit))
    return nll.sum() / impressions.sum()


class ClickCollator:
    """Pads input_ids (right) and stacks the [clicks, impressions] labels."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad({"input_ids": [f["input_ids"] for f in features]}, return_tensors="pt",
                                   padding_side="right")
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.float32)
        return batch


def run(recipe: Recipe) -> dict:
    cfg = recipe.reward
    out_dir = recipe.stage_dir(cfg.output)
    training = cfg.training
    seed_everything(recipe.seed)
    # 1. scorer model
    model, tokenizer, meta = load_scorer_for_training(recipe)
    # 2. data
    kind = "preferences" if cfg.kind == "pairwise" else "clicks"
    train_rows = sample_rows(load_rows(cfg.train.path, kind, **data_options(cfg.train, out_dir)),
                             training.max_train_rows, recipe.seed)
    eval_rows = sample_rows(load_rows(cfg.eval.path, kind, **data_options(cfg.eval, out_dir)),
                            training.max_eval_rows, recipe.seed)
    if cfg.rater_column:
        meta.update(rater_column=cfg.rater_column, raters=raters_of(train_rows, cfg.rater_column, cfg.train.path))
        raters_of(eval_rows, cfg.rater_column, cfg.eval.path)
    # 3. train
    if cfg.kind == "pairwise":
        args = trainer_args(RewardConfig, training, out_dir, recipe, max_length=training.max_length,
                            center_rewards_coefficient=cfg.center_rewards_coefficient, disable_dropout=True)
        trainer = PairRewardTrainer(model=model, args=args, processing_class=tokenizer,
                                    train_dataset=pair_dataset(train_rows, tokenizer, training.max_length,
                                                               cfg.margin_column, cfg.rater_column, cfg.limit_fit))
    else:
        args = trainer_args(TrainingArguments, training, out_dir, recipe, remove_unused_columns=False)
        trainer = Trainer(model=model, args=args,
                          train_dataset=click_dataset(train_rows, tokenizer, training.max_length, cfg.limit_fit),
                          data_collator=ClickCollator(tokenizer), compute_loss_func=click_loss)
    keep_trainable_dtype(trainer, recipe.model.dtype)
    tracker = start_tracking(trainer, training, recipe, cfg.output, out_dir)
    train(trainer, training, out_dir)
    model = trainer.model
    losses = loss_curve(trainer)
    metrics = {"rm/train_loss_first": losses[0] if losses else None, "rm/train_loss_last": losses[-1] if losses else None,
               "rm/train_rows": len(train_rows), "rm/steps": trainer.state.global_step}
    # 4. held-out evaluation, and the score scale of SFT-quality ads (for PPO normalization)
    def score(texts: list[str]) -> list[float]:
        return score_sequences(model, tokenizer, texts, batch_size=training.batch_size, max_length=training.max_length)

    held_out = (evaluate_pairwise(eval_rows, score, cfg.rater_column, cfg.limit_fit) if cfg.kind == "pairwise"
                else evaluate_clicks(eval_rows, score, cfg.limit_fit))
    metrics.update(held_out)
    if is_main_process():  # known now; the score scale below can take as long again on a CPU
        print(json.dumps(held_out), flush=True)
    score_rows = sample_rows(load_rows(cfg.score_samples.path, "sft", **data_options(cfg.score_samples, out_dir)),
                             cfg.max_score_rows or training.max_eval_rows, recipe.seed)
    sample_scores = rater_mean_scores(score, [row_context(r) for r in score_rows],
                                      [row_completion(r) for r in score_rows], meta.get("raters", [None]),
                                      [text_brief(r, cfg.limit_fit) for r in score_rows])
    meta.update(score_mean=statistics.fmean(sample_scores), score_std=statistics.pstdev(sample_scores))
    metrics.update({"rm/sft_score_mean": meta["score_mean"], "rm/sft_score_std": meta["score_std"],
                    "rm/sft_score_rows": len(score_rows)})
    # 5. save: adapter + score head (modules_to_save) or full model, tokenizer, metadata
    #    (files from the main process only; ZeRO-3 shards are gathered first)
    save_trained_model(trainer, out_dir)
    if is_main_process():
        tokenizer.save_pretrained(out_dir)
        atomic_write_text(out_dir / SCORER_META, json.dumps(meta, indent=2))
    write_stage_outputs(out_dir, metrics, recipe, trainer, tracker, stage="reward")
    if is_main_process():
        print(json.dumps(metrics, indent=2))
    return metrics


def evaluate_pairwise(rows: list[dict], score, rater_column: str | None = None, limit_fit: bool = False) -> dict:
    """Held-out accuracy (overall, per designer), agreement with the gold utility, and the noise ceiling.
    With rater_column each pair is scored as its own rater would."""
    chosen, rejected = zip(*(pair_texts(r, rater_column, limit_fit) for r in rows))
    s_chosen, s_rejected = score(list(chosen)), score(list(rejected))
    designers = [str(r.get("designer_id", "all")) for r in rows]
    accuracy = pairwise_accuracy(s_chosen, s_rejected, designers)
    metrics = {"rm/accuracy": accuracy.pop("all"), "rm/eval_pairs": len(rows)}
    metrics.update({f"rm/accuracy/{d}": v for d, v in accuracy.items() if d != "all"})
    gold = [(c, r, row) for c, r, row in zip(s_chosen, s_rejected, rows)
            if "chosen_gold" in row and row["chosen_gold"] != row["rejected_gold"]]
    if gold:
        metrics["rm/gold_agreement"] = sum((c > r) == (row["chosen_gold"] > row["rejected_gold"])
                                           for c, r, row in gold) / len(gold)
    if all("p_designer_chosen" in r for r in rows):
        metrics["rm/noise_ceiling"] = statistics.fmean(max(r["p_designer_chosen"], 1 - r["p_designer_chosen"]) for r in rows)
    return metrics


def evaluate_clicks(rows: list[dict], score, limit_fit: bool = False) -> dict:
    """Held-out AUC and log-loss, beside a constant-CTR baseline (and the true CTR where the data has it)."""
    logits = score([click_text(r, limit_fit) for r in rows])
    predicted = torch.sigmoid(torch.tensor(logits)).tolist()
    clicks = [float(r["clicks"]) for r in rows]
    impressions = [float(r["impressions"]) for r in rows]
    pooled = sum(clicks) / sum(impressions)
    metrics = {"ctr/auc": weighted_auc(predicted, clicks, [n - c for c, n in zip(clicks, impressions)]),
               "ctr/log_loss": click_log_loss(predicted, clicks, impressions),
               "ctr/log_loss_constant": click_log_loss([pooled] * len(rows), clicks, impressions),
               "ctr/mean_predicted": statistics.fmean(predicted), "ctr/observed": pooled, "ctr/eval_rows": len(rows)}
    if all("true_ctr" in r for r in rows):
        metrics["ctr/log_loss_true_ctr"] = click_log_loss([r["true_ctr"] for r in rows], clicks, impressions)
    return metrics
