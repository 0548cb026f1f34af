"""The README.md model card of every adapter folder a stage saves, in place of PEFT's empty template: base model,
stage, data, the recipe's key settings, the stage's final metrics, the command that made it, the licence."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from rlhf_ads import __version__
from rlhf_ads.storage import atomic_write_text

DATA_KEYS = {"sft": ("train", "eval"), "reward": ("train", "eval"), "ppo": ("prompts",), "dpo": ("train", "eval"),
             "grpo": ("prompts",), "rloo": ("prompts",)}
SETTINGS = ("learning_rate", "epochs", "max_steps", "batch_size", "steps", "mini_batch_size", "ppo_epochs",
            "prompts_per_step", "num_generations", "beta", "max_new_tokens", "temperature", "critic", "kind",
            "backbone")
ONLINE = ("ppo", "grpo", "rloo")  # the stages trained against the recipe's reward mix


def _data(section: Any, stage: str) -> list[str]:
    sources = [getattr(section, key, None) for key in DATA_KEYS.get(stage, ())]
    return [f"`{source.path}`" + (f" (split {source.split})" if source.split else "") for source in sources
            if source is not None and source.path]


def _settings(section: Any) -> dict[str, Any]:
    found = {}
    for holder in (section, getattr(section, "training", None)):
        found.update({k: getattr(holder, k) for k in SETTINGS if holder is not None and hasattr(holder, k)})
    if hasattr(section, "kl"):
        found["kl"] = f"{section.kl.estimator}, coef {section.kl.coef}"
    return found


def model_card(recipe, stage: str, metrics: dict[str, Any], role: str | None = None, lora: str = "LoRA") -> str:
    """The card's Markdown text for `stage`'s adapter (`role`: policy or value for PPO; `lora`: its shape)."""
    model, section = recipe.model, getattr(recipe, stage)
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in sorted(numbers.items()))
    settings = "\n".join(f"- {k}: {v}" for k, v in _settings(section).items())
    rewards = ", ".join(f"{r.name or r.function} x{r.weight:g}" for r in recipe.rewards) if stage in ONLINE else ""
    command = " ".join(shlex.quote(a) for a in ["rlhf-ads", *sys.argv[1:]]) if sys.argv[1:] else f"rlhf-ads {stage}"
    return f"""---
base_model: {model.base}
library_name: peft
license: apache-2.0
tags: [rlhf-ads, {stage}, ad-copy]
---

# {recipe.run_name}: {stage}{f" ({role})" if role else ""}

A {lora} adapter for `{model.base}` ({model.dtype}{", 4-bit base" if model.load_in_4bit else ""}), trained by the
`{stage}` stage of rlhf-ads {__version__} to write ad copy from briefs.

- Data: {", ".join(_data(section, stage)) or "see the recipe"}{f"; reward mix: {rewards}" if rewards else ""}
- Seed: {recipe.seed}
{settings}

## Metrics at the end of the stage

| metric | value |
|---|---:|
{rows or "| (none) | |"}

## How it was made

```
{command}
```

The stage's `metrics.json` beside this folder holds the whole resolved recipe. Load with
`PeftModel.from_pretrained(base, "<this folder>")`, or pass the folder to `rlhf-ads evaluate` (`evaluate.models`).

## Licence

The adapter is released under Apache-2.0 (the licence of rlhf-ads); the base model's own licence applies to its
weights.
"""


def write_model_card(folder: Path, recipe, stage: str, metrics: dict[str, Any], role: str | None = None) -> None:
    """Replace `folder`/README.md (PEFT's template) with the card, when the folder holds an adapter."""
    config_file = Path(folder) / "adapter_config.json"
    if config_file.is_file():
        adapter = json.loads(config_file.read_text())
        shape = f"LoRA r={adapter.get('r')}, alpha={adapter.get('lora_alpha')}"
        atomic_write_text(Path(folder) / "README.md", model_card(recipe, stage, metrics, role, shape))
