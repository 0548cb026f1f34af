"""Brief specificity: does the ad answer its own brief, or any brief for the product?

A policy trained against a reward model and rule terms drifts to one ad per product: the same keyword, the same
fact, whatever the brief's audience, tone and keyword list (docs/ppo_outcome.md, session 25). This term pays for
what sets the ad's brief apart from the product's other briefs, as the pointwise mutual information between the ad
and those fields under a fixed language model (the SFT policy), the maximum-mutual-information objective Li et
al. (2016, "A Diversity-Promoting Objective Function for Neural Conversation Models") used against generic replies:

    log p(ad | brief) - log mean_k p(ad | contrast_k)

where each contrast is the same brief with the `vary` fields (audience, tone, keywords) taken from another brief
of the same product (of the same category, else any, when the product has none to give). In nats; 0 for an ad
as likely under the contrasts as under its own brief, more for an ad that uses what only its brief asks for.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import zlib
from collections import defaultdict
from pathlib import Path

from reward_models._columns import sample_briefs
from rlhf_ads.rewards import Brief, completion_logprobs, load_base, render_prompt

logger = logging.getLogger(__name__)
VARY = ("audience", "tone", "keywords")


def _varied(brief: Brief, vary: tuple[str, ...]) -> tuple:
    """The brief's values of the `vary` fields, hashable (lists as tuples)."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in (getattr(brief, f) for f in vary))


class ContrastBriefs:
    """The contrast briefs of a brief: itself with the `vary` fields of other briefs from `pool`, the same product's
    first, then the same category's, then any; `k` distinct ones (fewer where the pool has fewer), always the same
    for the same brief (drawn with a seed from the brief's own fields, so that a resumed run scores alike)."""

    def __init__(self, pool: list[Brief], vary: tuple[str, ...] = VARY, k: int = 2, seed: int = 0):
        if not pool:
            raise ValueError("brief_specificity: the contrast pool has no briefs")
        unknown = set(vary) - {f.name for f in dataclasses.fields(Brief)}
        if unknown or not vary:
            raise ValueError(f"brief_specificity: `vary` names {sorted(unknown) or 'no field'}; use brief fields "
                             f"such as {', '.join(VARY)}")
        self.vary, self.k, self.seed = tuple(vary), k, seed
        self.by_product, self.by_category = defaultdict(dict), defaultdict(dict)
        for brief in pool:  # distinct values of the varied fields, in the pool's order
            values = _varied(brief, self.vary)
            self.by_product[brief.product].setdefault(values, brief)
            self.by_category[brief.category].setdefault(values, brief)
        self.anywhere = {values: b for group in self.by_product.values() for values, b in group.items()}

    def __call__(self, brief: Brief) -> list[Brief]:
        own = _varied(brief, self.vary)
        chosen: list[tuple] = []
        rng = random.Random(zlib.crc32(repr((self.seed, brief.product, brief.platform, brief.field, own)).encode()))
        for group in (self.by_product.get(brief.product, {}), self.by_category.get(brief.category, {}), self.anywhere):
            others = [v for v in group if v != own and v not in chosen]
            chosen += rng.sample(others, min(self.k - len(chosen), len(others)))
            if len(chosen) == self.k:
                break
        return [dataclasses.replace(brief, **dict(zip(self.vary, (list(v) if isinstance(v, tuple) else v
                                                                  for v in values)))) for values in chosen]


class BriefSpecificity:
    """log p(ad | brief) - log mean_k p(ad | contrast_k) under a fixed causal LM, in nats (module docstring).

    adapter: a PEFT adapter folder (the SFT stage's output) on `base` (default: the base it was trained on), or
    with `adapter: null` the base alone. contrast_from: the briefs contrasts are drawn from (e.g. the training
    briefs). vary: the fields a contrast takes from another brief. contrasts: how many per ad (each costs one
    forward of the scoring model over prompt and ad). None for a sample without a brief (a plain prompt).

        - {function: brief_specificity, weight: 1.0, clip: 3.0,
           kwargs: {adapter: '{run_dir}/sft', contrast_from: 'bundled:briefs:train'}}
    """

    def __init__(self, adapter: str | None = None, base: str | None = None, contrast_from: str = "bundled:briefs:train",
                 vary: list[str] | tuple[str, ...] = VARY, contrasts: int = 2, dtype: str = "auto",
                 batch_size: int = 16, seed: int = 0):
        from rlhf_ads.data import load_briefs

        if contrasts < 1:
            raise ValueError(f"brief_specificity: contrasts must be at least 1, got {contrasts}")
        if base is None:
            if adapter is None:
                raise ValueError("brief_specificity needs `adapter` (an SFT adapter folder) or `base` (a model)")
            base = _adapter_base(adapter)
        self.model, self.tokenizer = load_base(base, dtype=dtype, adapter=adapter)
        self.model.eval()
        self.contrasts = ContrastBriefs(load_briefs(contrast_from), tuple(vary), contrasts, seed)
        self.batch_size = batch_size
        logger.info("brief_specificity: %s on %s, %d contrasts varying %s from %s", adapter, base, contrasts,
                    ", ".join(vary), contrast_from)

    def __call__(self, completions: list[str], prompts: list[str], **columns) -> list[float | None]:
        briefs = sample_briefs(prompts, columns)
        pairs: list[tuple[int, str, str]] = []  # (sample, prompt, ad): each sample's own brief first
        for index, (brief, ad) in enumerate(zip(briefs, completions)):
            if brief is not None:
                pairs += [(index, render_prompt(b, self.tokenizer), ad) for b in [brief, *self.contrasts(brief)]]
        logprobs = completion_logprobs(self.model, self.tokenizer, [p for _, p, _ in pairs], [a for _, _, a in pairs],
                                       batch_size=self.batch_size)
        per_sample: dict[int, list[float]] = defaultdict(list)
        for (index, _, _), logprob in zip(pairs, logprobs):
            per_sample[index].append(logprob)
        return [_pointwise_mi(per_sample[i]) if i in per_sample else None for i in range(len(completions))]


def _pointwise_mi(logprobs: list[float]) -> float:
    """logprobs[0] - log mean(exp(logprobs[1:])), stably; 0 when there is no contrast."""
    own, others = logprobs[0], logprobs[1:]
    if not others:
        return 0.0
    top = max(others)
    return own - (top + math.log(sum(math.exp(x - top) for x in others) / len(others)))


def _adapter_base(adapter: str) -> str:
    """The base model a PEFT adapter folder names."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise ValueError(f"brief_specificity: '{adapter}' holds no PEFT adapter (adapter_config.json); give `base`")
    return json.loads(config.read_text())["base_model_name_or_path"]
