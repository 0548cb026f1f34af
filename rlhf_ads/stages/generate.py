"""Stage `generate`: write ad copy for briefs with a base model (and optionally an adapter)."""

from __future__ import annotations

import json
import logging
import time

from rlhf_ads.config import Recipe
from rlhf_ads.config_schema import to_dict
from rlhf_ads.data import data_options, load_briefs, render_prompt
from rlhf_ads.generation import generate_completions
from rlhf_ads.modeling import load_base
from rlhf_ads.platforms import width_for
from rlhf_ads.seeding import seed_everything
from rlhf_ads.storage import atomic_write_text

log = logging.getLogger(__name__)


def run(recipe: Recipe) -> dict:
    """Generate one ad per brief; write samples.jsonl and metrics.json; return the metrics."""
    cfg, model_cfg = recipe.generate, recipe.model
    seed_everything(recipe.seed)
    # 1. briefs -> chat prompts with the platform limit stated
    out_dir = recipe.stage_dir("generate")
    briefs = load_briefs(cfg.briefs.path, **data_options(cfg.briefs, out_dir))[: cfg.num_briefs]
    started = time.perf_counter()
    model, tokenizer = load_base(model_cfg.base, dtype=model_cfg.dtype, load_in_4bit=model_cfg.load_in_4bit,
                                 adapter=cfg.adapter, cache_dir=model_cfg.cache_dir)
    loaded = time.perf_counter()
    prompts = [render_prompt(b, tokenizer) for b in briefs]
    # 2. batched sampling
    ads = generate_completions(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens,
                               temperature=cfg.temperature, top_p=cfg.top_p, batch_size=cfg.batch_size,
                               progress="generate")
    done = time.perf_counter()
    # 3. write samples with their length check
    rows = []
    for brief, ad in zip(briefs, ads):
        width = width_for(ad, brief.platform)
        rows.append({"brief_id": brief.id, "platform": brief.platform, "field": brief.field, "product": brief.product,
                     "ad": ad, "chars": width, "max_chars": brief.max_chars, "within_limit": width <= brief.max_chars})
    atomic_write_text(out_dir / "samples.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    metrics = {
        "generate/num_ads": len(rows),
        "generate/within_limit_rate": sum(r["within_limit"] for r in rows) / len(rows),
        "generate/mean_chars": sum(r["chars"] for r in rows) / len(rows),
        "generate/load_seconds": round(loaded - started, 2),
        "generate/generate_seconds": round(done - loaded, 2),
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps({"metrics": metrics, "config": to_dict(recipe)}, indent=2))
    for r in rows:
        mark = "ok  " if r["within_limit"] else "LONG"
        print(f"[{mark} {r['chars']:>3}/{r['max_chars']}] {r['platform']}/{r['field']} · {r['product']}: {r['ad']!r}")
    print(f"wrote {out_dir}/samples.jsonl ({metrics['generate/within_limit_rate']:.0%} within limits)")
    return metrics
