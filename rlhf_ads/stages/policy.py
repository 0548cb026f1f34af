"""The policy the dpo, grpo and rloo stages train: the recipe's base (4-bit with model.load_in_4bit) carrying the SFT
stage's LoRA adapter, trainable, as PEFT's "default" adapter. TRL's trainers then copy it into a frozen "ref"
adapter on the same base, so the reference is the SFT policy at no second model's cost."""

from __future__ import annotations

import logging
from pathlib import Path

from rlhf_ads.config import Recipe
from rlhf_ads.errors import ConfigError
from rlhf_ads.modeling import load_base
from rlhf_ads.processes import is_main_process
from rlhf_ads.stages.common import require_trainable, save_trained_model

log = logging.getLogger(__name__)
ADAPTER_CONFIG = "adapter_config.json"


def sft_adapter_dir(recipe: Recipe, configured: str | None, stage: str) -> Path | None:
    """The SFT adapter folder a stage starts from: `configured` (which must hold one), else <run>/sft when it holds
    one; None when there is none (the stage then starts from a fresh LoRA adapter on the base)."""
    folder = Path(configured) if configured else recipe.stage_dir("sft")
    if (folder / ADAPTER_CONFIG).is_file():
        return folder
    if configured or (folder / "config.json").is_file():
        raise ConfigError(f"{stage}: '{folder}' holds no PEFT adapter ({ADAPTER_CONFIG}); {stage} trains a LoRA "
                          f"adapter on the SFT adapter: point {stage}.sft at the sft stage's output (for a fully "
                          "fine-tuned SFT model, set model.base to its folder instead)")
    return None


def load_policy(recipe: Recipe, sft_dir: Path | None, stage: str):
    """(model, tokenizer): the base with the SFT adapter as the trainable "default" adapter, or a fresh LoRA
    adapter (model.lora) when there is no SFT adapter."""
    model_cfg = recipe.model
    require_trainable(model_cfg)
    if sft_dir is None:
        log.warning("%s: no SFT adapter under %s; the policy starts as a fresh LoRA adapter on the base, and the "
                    "reference is the base", stage, recipe.stage_dir("sft"))
    return load_base(model_cfg.base, dtype=model_cfg.dtype, load_in_4bit=model_cfg.load_in_4bit, lora=model_cfg.lora,
                     adapter=str(sft_dir) if sft_dir is not None else None, cache_dir=model_cfg.cache_dir)


def prompt_for_trl(prompt: str, tokenizer) -> str:
    """A rendered prompt as TRL's trainers should get it: they tokenize prompt text with the tokenizer's special
    tokens, so a BOS token the chat template already wrote would come twice; it is dropped here."""
    bos = tokenizer.bos_token
    if bos and prompt.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
        return prompt[len(bos):]
    return prompt


def save_policy(trainer, tokenizer, out_dir: Path) -> None:
    """The trained adapter (PEFT's "default") and the tokenizer to out_dir, so that `evaluate` and
    `PeftModel.from_pretrained` take the folder; TRL's frozen "ref" copy is dropped first (the reference is the
    SFT adapter, on disk already)."""
    if "ref" in getattr(trainer.model, "peft_config", {}):
        trainer.model.delete_adapter("ref")
    save_trained_model(trainer, out_dir)
    if is_main_process():
        tokenizer.save_pretrained(out_dir)
