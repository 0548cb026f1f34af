"""Stage configs: one dataclass per recipe section, every field with help text.

A recipe is YAML with one section per stage; `load(path, overrides)` returns a
checked `Recipe` (see `config_schema` for the rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlhf_ads.config_schema import load_recipe, option


@dataclass
class LoraSettings:
    """PEFT LoRA adapter settings."""

    r: int = option(16, help="LoRA rank.")
    alpha: int = option(32, help="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = option(0.0, help="Dropout on the LoRA input; keep 0 for PPO (dropout must be off in RL).")
    target_modules: str = option("all-linear", help="Modules to adapt: 'all-linear' or a comma-separated list of names.")

    def __post_init__(self):
        if self.r < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    """The base causal LM and how it is held in memory."""

    base: str = option("smollm2-135m-instruct", help=(
        "Base model: a bundled name (smollm2-135m-instruct), a local transformers folder, "
        "a .gguf file, or a hub id (needs network or a filled HF cache)."))
    dtype: Literal["fp32", "bf16"] = option("bf16", help="Weight and compute dtype; bf16 is the fast path on AMX CPUs and GPUs.")
    load_in_4bit: bool = option(False, help="Quantize linear layers to NF4 with double quantization (QLoRA); saves memory.")
    use_lora: bool = option(False, help="Wrap the model with a trainable LoRA adapter.")
    lora: LoraSettings = option(help="LoRA adapter settings (used when use_lora is true).", factory=LoraSettings)
    cache_dir: str | None = option(None, help="Where converted GGUF models are cached; default $RLHF_ADS_CACHE or ~/.cache/rlhf_ads.")


@dataclass
class DataSource:
    """Where a stage's rows come from. A plain string in a recipe is short for {path: <string>}."""

    SHORTHAND = "path"

    path: str = option(help=(
        "'bundled:<kind>[:<split>]' (kinds: briefs, sft, preferences, clicks), a .jsonl/.csv/.parquet file, "
        "or a datasets save_to_disk folder."))
    split: str | None = option(None, help="Keep rows whose 'split' column equals this; for a DatasetDict folder, the split.")
    columns: dict[str, str] = option(help="Map our column names to yours, e.g. {chosen: better_ad, rejected: worse_ad}.",
                                     factory=dict)
    on_error: Literal["error", "skip"] = option("error", help=(
        "Bad rows: 'error' stops naming every one; 'skip' drops them, prints the count by reason and "
        "saves them to data_problems.jsonl in the stage's output folder."))
    max_text_chars: int = option(2000, help="Longest text field accepted, in characters.")
    briefs: str | None = option(None, help="Briefs to resolve a brief_id column against (bundled data: the bundled briefs).")


@dataclass
class GenerateConfig:
    """Stage `generate`: write ad copy for briefs with a model."""

    briefs: DataSource = option(help="Briefs to write for ('bundled:heldout' is short for the bundled held-out briefs).",
                                factory=lambda: DataSource("bundled:heldout"))
    adapter: str | None = option(None, help="Optional PEFT adapter folder to apply on the base (e.g. a stage's output).")
    num_briefs: int = option(6, help="How many briefs to write for (the first N).")
    batch_size: int = option(6, help="Prompts per generation batch.")
    max_new_tokens: int = option(48, help="Token budget for each ad.")
    temperature: float = option(0.7, help="Sampling temperature; 0 means greedy decoding.")
    top_p: float = option(0.9, help="Nucleus sampling mass.")

    def __post_init__(self):
        if self.num_briefs < 1 or self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("num_briefs, batch_size and max_new_tokens must all be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")


@dataclass
class RewardSpec:
    """One component of the reward mix."""

    function: str = option(help=(
        "A registry name (length_limit, length_fit, ad_policy, keyword_coverage, call_to_action, brand_voice, "
        "repetition, batch_diversity, reward_model, click_through), 'package.module:callable' or "
        "'path/to/file.py:callable'."))
    name: str | None = option(None, help="Name in logs (reward/<name>); default: the function's name.")
    weight: float = option(1.0, help="Weight of this component in the sum.")
    kwargs: dict[str, Any] = option(help="Keyword arguments: passed to a class's constructor or bound to a function.",
                                    factory=dict)
    normalize: bool = option(False, help="Standardize with a running mean/std before weighting (PPO-max).")
    clip: float | None = option(None, help="Clip the (normalized) value to [-clip, clip].")


@dataclass
class Recipe:
    """A whole recipe: run identity plus one section per stage."""

    run_name: str = option("quickstart", help="Name of the run; outputs go to <output_dir>/<run_name>/<stage>/.")
    output_dir: str = option("runs", help="Root folder for run outputs.")
    seed: int = option(0, help="Seed for Python, NumPy and torch.")
    model: ModelConfig = option(help="The base model.", factory=ModelConfig)
    generate: GenerateConfig = option(help="Stage `generate`.", factory=GenerateConfig)
    rewards: list[RewardSpec] = option(help="The reward mix used by PPO and evaluation.", factory=list)

    def stage_dir(self, stage: str) -> Path:
        """Output folder of one stage: <output_dir>/<run_name>/<stage>."""
        return Path(self.output_dir) / self.run_name / stage


def load(path: str | Path | None, overrides: list[str] = ()) -> Recipe:
    """Load and check a recipe; `overrides` are `section.key=value` strings."""
    return load_recipe(Recipe, path, overrides)
