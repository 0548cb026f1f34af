"""Stage `generate`: write ad copy for briefs or plain prompts with a base model (and optionally an adapter)."""

from __future__ import annotations

import json
import logging
import time

from rlhf_ads.best_of_n import best_of_n
from rlhf_ads.config import Recipe
from rlhf_ads.config_schema import to_dict
from rlhf_ads.data import data_options, load_prompts, render_row_prompt, reward_columns, row_id, row_target
from rlhf_ads.errors import ConfigError
from rlhf_ads.generation import generate_completions
from rlhf_ads.modeling import load_base
from rlhf_ads.platforms import text_width, width_for
from rlhf_ads.rewards import CompositeReward
from rlhf_ads.seeding import seed_everything
from rlhf_ads.storage import atomic_write_text

log = logging.getLogger(__name__)


def run(recipe: Recipe) -> dict:
    """Generate one ad per brief or prompt; write samples.jsonl and metrics.json; return the metrics."""
    cfg, model_cfg = recipe.generate, recipe.model
    seed_everything(recipe.seed)
    if cfg.best_of > 1 and not recipe.rewards:
        raise ConfigError(f"generate.best_of={cfg.best_of} keeps the ad the reward mix scores highest: add a "
                          "`rewards:` list to the recipe (e.g. - {function: length_fit})")
    # 1. briefs -> chat prompts with the platform limit stated; plain prompts -> the user turn
    out_dir = recipe.stage_dir("generate")
    rows = load_prompts(cfg.briefs.path, **data_options(cfg.briefs, out_dir))[: cfg.num_briefs]
    started = time.perf_counter()
    model, tokenizer = load_base(model_cfg.base, dtype=model_cfg.dtype, load_in_4bit=model_cfg.load_in_4bit,
                                 adapter=cfg.adapter, cache_dir=model_cfg.cache_dir)
    loaded = time.perf_counter()
    prompts = [render_row_prompt(r, tokenizer) for r in rows]
    # 2. batched sampling (best_of > 1: n samples a brief, the reward mix keeps the best)
    sampling = dict(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                    batch_size=cfg.batch_size, progress="generate")
    scores = None
    if cfg.best_of > 1:
        chosen = best_of_n(model, tokenizer, prompts, reward_columns(rows), CompositeReward.from_specs(recipe.rewards),
                           cfg.best_of, **sampling)
        ads, scores = chosen.ads, chosen.scores
    else:
        ads = generate_completions(model, tokenizer, prompts, **sampling)
    done = time.perf_counter()
    # 3. write samples with their length check (rows without a platform and field have no limit to check)
    samples = [_sample(row, ad) for row, ad in zip(rows, ads)]
    for sample, score in zip(samples, scores or []):
        sample["reward"] = score  # the reward mix's total of the best of best_of samples
    atomic_write_text(out_dir / "samples.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in samples))
    limited = [r for r in samples if r["max_chars"] is not None]
    metrics = {
        "generate/num_ads": len(samples),
        **({"generate/within_limit_rate": sum(r["within_limit"] for r in limited) / len(limited)} if limited else {}),
        "generate/mean_chars": sum(r["chars"] for r in samples) / len(samples),
        "generate/load_seconds": round(loaded - started, 2),
        "generate/generate_seconds": round(done - loaded, 2),
        **({"generate/best_of": cfg.best_of, "generate/mean_reward": sum(scores) / len(scores)} if scores else {}),
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps({"metrics": metrics, "config": to_dict(recipe)}, indent=2))
    for r in samples:
        if r["max_chars"] is None:
            print(f"[    {r['chars']:>3} chars] {r['product'] or r['brief_id'] or 'prompt'}: {r['ad']!r}")
        else:
            mark = "ok  " if r["within_limit"] else "LONG"
            print(f"[{mark} {r['chars']:>3}/{r['max_chars']}] {r['platform']}/{r['field']} · "
                  f"{r['product'] or r['brief_id']}: {r['ad']!r}")
    within = f"{metrics['generate/within_limit_rate']:.0%} of {len(limited)} within limits" if limited else ""
    unchecked = (f"limits not checked for {len(samples) - len(limited)}: no platform and field"
                 if len(limited) < len(samples) else "")
    print(f"wrote {out_dir}/samples.jsonl ({'; '.join(part for part in (within, unchecked) if part)})")
    return metrics


def _sample(row: dict, ad: str) -> dict:
    """One samples.jsonl record: the row's id (brief_id), target and product (None when it has none), the ad, its
    width by the platform's rule (characters without a platform) and whether it fits the limit (None: no limit)."""
    platform, field, limit = row_target(row)
    width = width_for(ad, platform) if platform else text_width(ad, double_width_counts_twice=False)
    brief = row.get("brief")
    return {"brief_id": row_id(row), "platform": platform, "field": field,
            "product": brief.product if brief is not None else row.get("product"), "ad": ad, "chars": width,
            "max_chars": limit, "within_limit": None if limit is None else width <= limit}
