"""`rlhf-ads evaluate`: compare checkpoints (base, SFT, PPO, DPO, GRPO, RLOO, or adapter folders) and best-of-n on
held-out briefs (or prompts).

Every model writes one ad per brief with the same decoding (best_of_n: the best of n samples from SFT by the
reward mix); each ad is scored by the recipe's reward mix (total and each component), the gold utility (bundled
data), the linter's platform and policy rules, keyword coverage (the gold utility and the limits only where a
brief gives them); each model's ads by distinct-1/2, self-BLEU, length quantiles, the exact KL to the reference (the SFT adapter) summed over
the generated tokens, and the win rate against SFT judged by the reward model. Writes
<run>/report/metrics.json, samples.jsonl and report.html.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from peft import PeftModel
from tqdm.auto import tqdm

from rlhf_ads.best_of_n import best_of_n, best_of_n_kl
from rlhf_ads.config import Recipe
from rlhf_ads.config_schema import to_dict
from rlhf_ads.data import (data_options, load_prompts, render_row_prompt, representative_rows, reward_columns,
                           row_id, row_target, within_limit_shares)
from rlhf_ads.data.gold import row_gold
from rlhf_ads.errors import RlhfAdsError
from rlhf_ads.evaluation.comparison import BEST_OF_N, PPO_BEST
from rlhf_ads.evaluation.metrics import distinct_n, quantiles, self_bleu, top_opening_share, win_rate
from rlhf_ads.evaluation.report import write_report
from rlhf_ads.evaluation.stats import STAT_FIELDS, compare, format_cell, standard_deviation, table_rows
from rlhf_ads.generation import GeneratedBatch, adapter_active, generate_batches
from rlhf_ads.lint import context_for, keywords_present, lint
from rlhf_ads.modeling import load_base
from rlhf_ads.ppo.validation import BEST
from rlhf_ads.rewards import CompositeReward
from rlhf_ads.storage import atomic_write_text
from rlhf_ads.tracking import RunTracker

log = logging.getLogger(__name__)
OUTPUT_FOLDER = "report"  # <run>/report/
BASELINE = "sft"  # the model the others are compared with: win rates against it, KL to it


def model_folders(recipe: Recipe) -> dict[str, Path | None]:
    """name -> adapter folder (None for the base). Names: base, sft, ppo, ppo_best (PPO's policy at its best
    validation proxy), dpo, grpo, rloo, best_of_n (the SFT adapter), or paths to adapter folders, named by the
    fewest trailing parts of their paths that tell them apart ('a/ppo/policy', 'b/ppo/policy' -> 'a-ppo-policy',
    'b-ppo-policy')."""
    known = {"base": None, "sft": recipe.stage_dir("sft"), "ppo": recipe.stage_dir("ppo") / "policy",
             PPO_BEST: recipe.stage_dir("ppo") / BEST / "policy",
             **{stage: recipe.stage_dir(stage) for stage in ("dpo", "grpo", "rloo")}, BEST_OF_N: recipe.stage_dir("sft")}
    for name in recipe.evaluate.models:
        folder = known.get(name, Path(name))
        if folder is not None and not (folder / "adapter_config.json").is_file():
            raise RlhfAdsError(f"checkpoint '{name}': folder '{folder}' has no PEFT adapter (adapter_config.json); "
                               "expected the output of `rlhf-ads sft`, `rlhf-ads ppo` (ppo/policy), `rlhf-ads "
                               f"dpo|grpo|rloo` or another adapter trained on {recipe.model.base}")
    paths = [Path(name) for name in recipe.evaluate.models if name not in known]
    for parts in range(1, max((len(p.parts) for p in paths), default=1) + 1):
        names = ["-".join(p.parts[-parts:]) for p in paths]
        if len(set(names)) == len(names) and not set(names) & set(known):
            break
    named = dict(zip(map(str, paths), names if paths else []))
    return {(name if name in known else named[str(Path(name))]): known.get(name, Path(name))
            for name in recipe.evaluate.models}


def attach_adapter(model, name: str, folder: Path, base: str):
    """`model` with the PEFT adapter in `folder` loaded under `name` (wrapping a plain model on the first); an
    adapter of another base is an RlhfAdsError that says so."""
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(folder), adapter_name=name)
            return model
        return PeftModel.from_pretrained(model, str(folder), adapter_name=name)
    except (RuntimeError, ValueError, KeyError) as exc:  # size mismatch: an adapter of another base
        raise RlhfAdsError(f"checkpoint '{name}' ({folder}) does not fit the base model '{base}': "
                           f"{str(exc).splitlines()[0][:200]}; evaluate it with the model.base it was trained on") from None


def load_checkpoints(recipe: Recipe, folders: dict[str, Path | None]):
    """(model, tokenizer): the recipe's base with each checkpoint's adapter loaded under its name (None: the base
    itself, used with adapters disabled)."""
    model, tokenizer = load_base(recipe.model.base, dtype=recipe.model.dtype, load_in_4bit=recipe.model.load_in_4bit,
                                 cache_dir=recipe.model.cache_dir)
    for name, folder in folders.items():
        if folder is not None:
            model = attach_adapter(model, name, folder, recipe.model.base)
    return model, tokenizer


def generate_ads(model, tokenizer, prompts: list[str], adapter: str | None, reference: str | None,
                 decoding: dict) -> tuple[list[str], list[float] | None]:
    """Each prompt's ad from `adapter` (None: the base model) and, with a reference adapter, each ad's exact
    KL(model || reference) summed over its generated tokens (full distributions, not samples). The model's
    side comes from the logits generation already computed; only the reference runs a forward pass."""
    ads: list[str] = []
    kls: list[float] | None = None if reference is None else []
    stop_ids = stop_token_ids(model, tokenizer)
    for start in tqdm(range(0, len(prompts), decoding["batch_size"]), desc=f"evaluate {adapter or 'base'}",
                      unit="batch"):
        with adapter_active(model, adapter):
            [batch] = generate_batches(model, tokenizer, prompts[start:start + decoding["batch_size"]],
                                       with_logits=reference is not None, **decoding)
        ads.extend(batch.texts)
        if kls is not None:
            kls.extend(reference_kl(model, batch, reference, stop_ids))
    return ads, kls


@torch.no_grad()
def reference_kl(model, batch: GeneratedBatch, reference: str, stop_ids: list[int]) -> list[float]:
    """sum over generated tokens (up to the first stop) of sum_v p(v) (log p(v) - log q(v)), with p the
    generating model's logits (B, T, V) and q the reference adapter's on the same left-padded sequences
    -> (B,). Position ids follow the padding, as in generation."""
    width = batch.prompt_ids.shape[1]
    ids = torch.cat([batch.prompt_ids, batch.new_ids], 1)
    attention = torch.cat([batch.prompt_mask, torch.ones_like(batch.new_ids)], 1)
    positions = (attention.cumsum(1) - 1).clamp(min=0)
    predicting = torch.arange(width - 1, ids.shape[1] - 1, device=ids.device)  # position t predicts token t + 1
    model.set_adapter(reference)
    logits = model(input_ids=ids, attention_mask=attention, position_ids=positions, logits_to_keep=predicting).logits
    log_q = torch.log_softmax(logits.float(), -1)
    log_p = torch.log_softmax(batch.logits.float(), -1)
    per_token = (log_p.exp() * (log_p - log_q)).sum(-1) * batch.response_mask(stop_ids)
    return per_token.sum(1).cpu().tolist()


def best_of_n_ads(model, tokenizer, prompts: list[str], columns: dict, adapter: str, rewards, n: int,
                  sampling: dict) -> tuple[list[str], list[float]]:
    """Each prompt's best of n samples from `adapter` by the reward mix, and each ad's KL to the sampling adapter
    (SFT) as best-of-n's analytic bound log(n) - (n - 1)/n."""
    if rewards is None:
        raise RlhfAdsError(f"evaluate.models names {BEST_OF_N}, which keeps the ad the reward mix scores highest: add "
                           "a `rewards:` list to the recipe")
    with adapter_active(model, adapter):
        chosen = best_of_n(model, tokenizer, prompts, columns, rewards, n, **sampling)
    return chosen.ads, [best_of_n_kl(n)] * len(prompts)


def stop_token_ids(model, tokenizer) -> list[int]:
    """The ids that end generation: the generation config's eos ids and the tokenizer's."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    return sorted({i for i in [*ids, tokenizer.eos_token_id] if i is not None})


def judge_name(recipe: Recipe) -> str | None:
    """The reward component that judges win rates: evaluate.judge, else the first reward_model component."""
    if recipe.evaluate.judge is not None:
        names = [spec.name or spec.function for spec in recipe.rewards]
        if recipe.evaluate.judge not in names:
            raise RlhfAdsError(f"evaluate.judge '{recipe.evaluate.judge}' is not a component of the reward mix "
                               f"({', '.join(names) or 'empty'})")
        return recipe.evaluate.judge
    return next((spec.name or spec.function for spec in recipe.rewards if spec.function == "reward_model"), None)


def run(recipe: Recipe) -> dict:
    cfg = recipe.evaluate
    out_dir = recipe.stage_dir(OUTPUT_FOLDER)
    folders = model_folders(recipe)
    briefs = load_prompts(cfg.briefs.path, **data_options(cfg.briefs, out_dir))  # rows: briefs or plain prompts
    briefs = briefs if cfg.num_briefs == "all" else representative_rows(briefs, cfg.num_briefs)
    model, tokenizer = load_checkpoints(recipe, folders)
    prompts = [render_row_prompt(b, tokenizer) for b in briefs]
    rewards = CompositeReward.from_specs(recipe.rewards) if recipe.rewards else None
    judge = judge_name(recipe)
    columns = reward_columns(briefs)
    decoding = dict(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=1.0, batch_size=cfg.batch_size)
    sampling = dict(decoding, temperature=recipe.ppo.temperature, top_p=recipe.ppo.top_p)
    metrics: dict[str, float] = {}
    per_ad: dict[str, list[dict]] = {}
    has_baseline = BASELINE in folders and isinstance(model, PeftModel)
    for name, folder in folders.items():
        adapter = None if folder is None else name
        started = time.perf_counter()
        with_kl = has_baseline and name != BASELINE
        best_of = cfg.best_of_n if name == BEST_OF_N else None
        if best_of:
            torch.manual_seed(recipe.seed)  # best-of-n samples: the same draws whatever the other models are
        ads, kls = writer(model, tokenizer, adapter, sampling if best_of else decoding, BASELINE if with_kl else None,
                          best_of, rewards)(prompts, columns)
        generated = time.perf_counter()
        model_metrics, per_ad[name] = score_ads(briefs, prompts, ads, rewards, columns, judge)
        if has_baseline:
            kls = kls if with_kl else [0.0] * len(ads)  # the reference against itself: exactly 0
            model_metrics["kl_to_sft"] = sum(kls) / len(kls)
            for record, kl in zip(per_ad[name], kls):
                record["kl_to_sft"] = kl
        model_metrics["generate_seconds"] = round(generated - started, 1)
        log.info("evaluate: %s wrote %d ads (and their KL) in %.0f s, scored them in %.0f s", name, len(briefs),
                 generated - started, time.perf_counter() - generated)
        metrics.update({f"eval/{name}/{k}": v for k, v in model_metrics.items()})
        if cfg.samples_per_brief:
            torch.manual_seed(recipe.seed)  # the same draws for a model whatever the others are
            sampled_metrics = sample_ads(writer(model, tokenizer, adapter, sampling, None, best_of, rewards), briefs,
                                         prompts, per_ad[name], rewards, columns, judge, cfg.samples_per_brief)
            metrics.update({f"eval/{name}/sampled/{k}": v for k, v in sampled_metrics.items()})
    summary: list[str] = []
    if BASELINE in per_ad:
        for name in per_ad:
            key = "judge" if judge else "composite_reward"
            if name != BASELINE and all(r.get(key) is not None for r in per_ad[name] + per_ad[BASELINE]):
                metrics[f"eval/{name}/win_rate_vs_sft"] = win_rate([r[key] for r in per_ad[name]],
                                                                   [r[key] for r in per_ad[BASELINE]])
        for prefix, per_brief in _per_brief_scores(per_ad, cfg.samples_per_brief).items():
            sft_golds = [ad.get("gold") for r in per_ad[BASELINE] for ad in ([r] if not prefix else r["sampled"])]
            compared, sentences = compare(per_brief, BASELINE, prefix=prefix, seed=recipe.seed,
                                          gold_sd=standard_deviation(sft_golds) if None not in sft_golds else None)
            metrics.update({f"eval/{k}": v for k, v in compared.items()})
            summary += [f"{'sampled' if prefix else 'greedy'}: {s}" for s in sentences]
    samples = [dict(_sample_head(b), **{name: per_ad[name][i] for name in per_ad}) for i, b in enumerate(briefs)]
    atomic_write_text(out_dir / "samples.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    atomic_write_text(out_dir / "metrics.json", json.dumps({"metrics": metrics, "summary": summary,
                                                            "config": to_dict(recipe)}, indent=2))
    write_report(out_dir / "report.html", recipe, metrics, samples, list(folders), judge, summary)
    _track(recipe, out_dir, metrics, samples, list(folders))
    print(format_table(metrics, list(folders)))
    print("\n".join(summary))
    log.info("evaluate: wrote %s", out_dir / "report.html")
    return metrics


def writer(model, tokenizer, adapter: str | None, decoding: dict, reference: str | None = None,
           best_of: int | None = None, rewards=None):
    """write(prompts, columns) -> (ads, KL per ad or None): `adapter`'s ad per prompt with `decoding`, and its exact
    KL to `reference` (generate_ads); with `best_of` = n, each the best of n samples by `rewards` (best_of_n_ads)."""
    def write(prompts: list[str], columns: dict) -> tuple[list[str], list[float] | None]:
        if best_of:
            return best_of_n_ads(model, tokenizer, prompts, columns, adapter, rewards, best_of, decoding)
        return generate_ads(model, tokenizer, prompts, adapter, reference, decoding)
    return write


def sample_ads(write, briefs, prompts: list[str], records: list[dict], rewards, columns, judge: str | None,
               n: int) -> dict[str, float]:
    """`n` sampled ads per brief from one model (`write(prompts, columns) -> (ads, kls)`; best_of_n: n best-of-n
    draws): each brief's greedy record gets them under "sampled" (a list of score records); returns the model's
    metrics over all of them (means over n ads per brief)."""
    repeated = [i for i in range(len(briefs)) for _ in range(n)]
    repeated_columns = {k: [v[i] for i in repeated] for k, v in columns.items()}
    ads, _ = write([prompts[i] for i in repeated], repeated_columns)
    sampled_metrics, sampled = score_ads([briefs[i] for i in repeated], [prompts[i] for i in repeated], ads, rewards,
                                         repeated_columns, judge)
    for i, record in enumerate(records):
        record["sampled"] = sampled[i * n:(i + 1) * n]
    return sampled_metrics


def _per_brief_scores(per_ad: dict[str, list[dict]], samples_per_brief: int) -> dict[str, dict[str, dict[str, list[float]]]]:
    """metric prefix ('' for the greedy ads, 'sampled/' for the means over sampled ads) -> model -> record field
    -> one value per brief."""
    def fields(records: list[dict]) -> list[str]:  # a judge may leave ads unscored (None): no statistics then
        return [f for f in STAT_FIELDS if all(r.get(f) is not None for r in records)]

    out = {"": {name: {f: [float(r[f]) for r in records] for f in fields(records)} for name, records in per_ad.items()}}
    if samples_per_brief:
        out["sampled/"] = {name: {f: [sum(float(s[f]) for s in r["sampled"]) / len(r["sampled"]) for r in records]
                                  for f in fields([s for r in records for s in r["sampled"]])}
                           for name, records in per_ad.items()}
    return out


def _track(recipe: Recipe, out_dir: Path, metrics: dict[str, float], samples: list[dict], names: list[str]) -> None:
    """The metrics as a summary and the sample ads as a table, in evaluate.report_to's tracker."""
    tracker = RunTracker.start(recipe, OUTPUT_FOLDER, out_dir, recipe.evaluate.report_to)
    try:
        tracker.log(metrics, step=0)
        tracker.summary(metrics)
        tracker.log_samples([{"brief_id": s["brief_id"], **{n: s[n]["ad"] for n in names}} for s in samples],
                            step=0, name="eval_samples")
    finally:
        tracker.finish()


def _sample_head(row: dict) -> dict:
    """What samples.jsonl and the report show of a row: its id, target and brief (None where it has none) or, for a
    plain prompt, the prompt."""
    platform, field, limit = row_target(row)
    brief = row.get("brief")
    head = {"brief_id": row_id(row), "platform": platform, "field": field, "max_chars": limit,
            "product": None if brief is None else brief.product, "brand": None if brief is None else brief.brand}
    if brief is None:
        head["prompt"] = row.get("prompt") if isinstance(row.get("prompt"), str) else render_conversation(row)
    return head


def render_conversation(row: dict) -> str:
    """A conversational prompt (`prompt` or `messages` as a list of {role, content}) as plain text."""
    messages = row.get("prompt") if isinstance(row.get("prompt"), list) else (row.get("messages") or [])[:-1]
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def score_ads(rows, prompts, ads: list[str], rewards, columns,
              judge: str | None) -> tuple[dict[str, float], list[dict]]:
    """One model's ads for rows (briefs or plain prompts) -> (metrics without the eval/<name>/ prefix, one score
    record per ad). The gold utility needs a brief with a limit; limits are checked where a row gives them."""
    n = len(ads)
    targets = [row_target(row) for row in rows]
    violations = [lint(ad, context_for(platform, field)) for (platform, field, _), ad in zip(targets, ads)]
    keywords_column = columns.get("keywords") or [None] * n
    coverage = [keywords_present(ad, keywords) if keywords else None for ad, keywords in zip(ads, keywords_column)]
    records = [{"ad": ad, "chars": len(ad), "compliant": not v, "violations": sorted({x.rule for x in v})}
               for ad, v in zip(ads, violations)]
    for record, row, ad in zip(records, rows, ads):
        if (gold := row_gold(row, ad)) is not None:
            record["gold"] = gold
    applicable = [c for c in coverage if c is not None]
    chars = [len(a) for a in ads]
    out = {**({"gold": sum(r["gold"] for r in records) / n} if all("gold" in r for r in records) else {}),
           "compliance": sum(r["compliant"] for r in records) / n,
           **within_limit_shares(ads, rows),
           "policy_violations": sum(len([x for x in v if x.rule != "over_limit"]) for v in violations) / n,
           **({"keyword_coverage": sum(applicable) / len(applicable)} if applicable else {}),
           "distinct_1": distinct_n(ads, 1), "distinct_2": distinct_n(ads, 2), "self_bleu": self_bleu(ads),
           "top_opening_share": top_opening_share(ads),
           "mean_chars": sum(chars) / n, **dict(zip(("chars_p10", "chars_p50", "chars_p90"), quantiles(chars)))}
    if rewards is not None:
        scored = rewards.score(ads, prompts, **columns)
        out["composite_reward"] = sum(scored.total) / n
        out.update({f"reward/{name}": mean for name, mean in scored.raw_means().items()})
        for i, record in enumerate(records):
            record["composite_reward"] = scored.total[i]
            if judge is not None:
                record["judge"] = scored.raw[judge][i]
        judged = [v for v in scored.raw[judge] if v is not None] if judge is not None else []
        if judged:
            out["judge"] = sum(judged) / len(judged)
    return out, records


def format_table(metrics: dict[str, float], names: list[str]) -> str:
    """A plain-text table: one row per metric, one column per model, 95% intervals in brackets."""
    rows = table_rows(metrics, names)
    cells = {key: [format_cell(*cell) for cell in row] for key, row in rows.items()}
    width = max([12, *(len(c) + 2 for row in cells.values() for c in row)])
    lines = ["metric".ljust(32) + "".join(n.rjust(width) for n in names)]
    lines += [key.ljust(32) + "".join(c.rjust(width) for c in row) for key, row in cells.items()]
    return "\n".join(lines)
