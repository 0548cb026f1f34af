"""`rlhf-ads evaluate`: compare checkpoints (base, SFT, PPO, or adapter folders) on held-out briefs.

Every model writes one ad per brief with the same decoding; each is scored by the recipe's reward
mix, the gold utility (bundled data), the linter's platform and policy rules, keyword coverage,
distinct-n, length, and the exact KL to the reference (the SFT adapter) summed over the response.
Writes <run>/report/metrics.json and samples.jsonl.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from peft import PeftModel

from rlhf_ads.config import Recipe
from rlhf_ads.config_schema import to_dict
from rlhf_ads.data import data_options, load_briefs, render_prompt
from rlhf_ads.data.gold import gold_utility
from rlhf_ads.errors import RlhfAdsError
from rlhf_ads.evaluation.metrics import distinct_n
from rlhf_ads.generation import generate_completions
from rlhf_ads.modeling import load_base
from rlhf_ads.rewards import CompositeReward
from rlhf_ads.storage import atomic_write_text

log = logging.getLogger(__name__)
STAGE = "report"


def model_folders(recipe: Recipe) -> dict[str, Path | None]:
    """name -> adapter folder (None for the base). Names: base, sft, ppo, or paths to adapter folders."""
    known = {"base": None, "sft": recipe.stage_dir("sft"), "ppo": recipe.stage_dir("ppo") / "policy"}
    out = {}
    for name in recipe.evaluate.models:
        folder = known.get(name, Path(name))
        if folder is not None and not (folder / "adapter_config.json").is_file():
            raise RlhfAdsError(f"checkpoint '{name}': folder '{folder}' has no PEFT adapter (adapter_config.json); "
                               "expected the output of `rlhf-ads sft`, `rlhf-ads ppo` (ppo/policy) or another adapter "
                               f"trained on {recipe.model.base}")
        out[name if name in known else Path(name).name] = folder
    return out


def _attach(model, name: str, folder: Path, base: str):
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(folder), adapter_name=name)
            return model
        return PeftModel.from_pretrained(model, str(folder), adapter_name=name)
    except (RuntimeError, ValueError, KeyError) as exc:  # size mismatch: an adapter of another base
        raise RlhfAdsError(f"checkpoint '{name}' ({folder}) does not fit the base model '{base}': "
                           f"{str(exc).splitlines()[0][:200]}; evaluate it with the model.base it was trained on") from None


@torch.no_grad()
def response_kl(model, tokenizer, prompts: list[str], responses: list[str], policy: str | None, reference: str) -> list[float]:
    """Exact KL(policy || reference) summed over each response's tokens (full distributions, not samples)."""
    values = []
    for prompt, response in zip(prompts, responses):
        ids = tokenizer([prompt + response], return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
        start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        log_p = _log_probs(model, ids, policy)[:, start - 1:-1]
        log_q = _log_probs(model, ids, reference)[:, start - 1:-1]
        values.append(float((log_p.exp() * (log_p - log_q)).sum()))
    return values


def _log_probs(model, ids, adapter: str | None):
    if adapter is None:
        with model.disable_adapter():
            return torch.log_softmax(model(input_ids=ids).logits.float(), -1)
    model.set_adapter(adapter)
    return torch.log_softmax(model(input_ids=ids).logits.float(), -1)


def run(recipe: Recipe) -> dict:
    cfg = recipe.evaluate
    out_dir = recipe.stage_dir(STAGE)
    folders = model_folders(recipe)
    briefs = load_briefs(cfg.briefs.path, **data_options(cfg.briefs, out_dir))[: cfg.num_briefs]
    model, tokenizer = load_base(recipe.model.base, dtype=recipe.model.dtype, load_in_4bit=recipe.model.load_in_4bit,
                                 cache_dir=recipe.model.cache_dir)
    for name, folder in folders.items():
        if folder is not None:
            model = _attach(model, name, folder, recipe.model.base)
    reference = "sft" if "sft" in folders else None
    prompts = [render_prompt(b, tokenizer) for b in briefs]
    rewards = CompositeReward.from_specs(recipe.rewards) if recipe.rewards else None
    columns = {k: [b.to_dict()[k] for b in briefs] for k in briefs[0].to_dict()}
    metrics, samples = {}, {b.id: {"brief_id": b.id, "platform": b.platform, "field": b.field} for b in briefs}
    for name, folder in folders.items():
        adapter = None if folder is None else name
        ads = _generate(model, tokenizer, prompts, adapter, cfg)
        metrics.update(score_ads(name, briefs, prompts, ads, rewards, columns))
        if reference is not None and isinstance(model, PeftModel):
            kls = response_kl(model, tokenizer, prompts, ads, adapter, reference)
            metrics[f"eval/{name}/kl_to_sft"] = sum(kls) / len(kls)
        for brief, ad in zip(briefs, ads):
            samples[brief.id][name] = ad
    atomic_write_text(out_dir / "samples.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples.values()))
    atomic_write_text(out_dir / "metrics.json", json.dumps({"metrics": metrics, "config": to_dict(recipe)}, indent=2))
    print(format_table(metrics, list(folders)))
    return metrics


def _generate(model, tokenizer, prompts, adapter: str | None, cfg) -> list[str]:
    kwargs = dict(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=1.0, batch_size=cfg.batch_size)
    if adapter is None:
        if isinstance(model, PeftModel):
            with model.disable_adapter():
                return generate_completions(model, tokenizer, prompts, **kwargs)
        return generate_completions(model, tokenizer, prompts, **kwargs)
    model.set_adapter(adapter)
    return generate_completions(model, tokenizer, prompts, **kwargs)


def score_ads(name: str, briefs, prompts, ads: list[str], rewards, columns) -> dict[str, float]:
    """eval/<name>/<metric> for one model's ads."""
    from reward_models.copy_quality import keyword_coverage
    from reward_models.policy import context_for, lint

    n = len(ads)
    violations = [lint(ad, context_for(b.platform, b.field)) for b, ad in zip(briefs, ads)]
    coverage = [c for c in keyword_coverage(ads, prompts, keywords=columns["keywords"]) if c is not None]
    out = {"gold": sum(gold_utility(b, a) for b, a in zip(briefs, ads)) / n,
           "compliance": sum(not v for v in violations) / n,
           "within_limit": sum(not any(x.rule == "over_limit" for x in v) for v in violations) / n,
           "policy_violations": sum(len([x for x in v if x.rule != "over_limit"]) for v in violations) / n,
           "keyword_coverage": sum(coverage) / max(1, len(coverage)),
           "distinct_1": distinct_n(ads, 1), "distinct_2": distinct_n(ads, 2),
           "mean_chars": sum(len(a) for a in ads) / n}
    if rewards is not None:
        out["composite_reward"] = sum(rewards(ads, prompts, **columns)) / n
    return {f"eval/{name}/{k}": v for k, v in out.items()}


def format_table(metrics: dict[str, float], names: list[str]) -> str:
    keys = sorted({k.split("/", 2)[2] for k in metrics})
    lines = ["metric".ljust(20) + "".join(n.rjust(12) for n in names)]
    for key in keys:
        lines.append(key.ljust(20) + "".join(f"{metrics.get(f'eval/{n}/{key}', float('nan')):12.3f}" for n in names))
    return "\n".join(lines)
