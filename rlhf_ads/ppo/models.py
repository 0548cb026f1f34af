"""The memory design: one base (optionally 4-bit) carrying LoRA adapters for the policy, the frozen
reference (the SFT adapter) and the value function, plus a small value head."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from rlhf_ads.modeling import SCORER_META, load_base

log = logging.getLogger(__name__)
POLICY, REFERENCE, VALUE = "policy", "reference", "value"


class ActorCritic:
    """Policy, reference and value as adapters on one base. `use(name)` switches the active adapter;
    with no SFT adapter the reference is the base with adapters disabled."""

    def __init__(self, model: PeftModel, tokenizer, value_head: torch.nn.Linear, has_reference: bool):
        self.model, self.tokenizer, self.value_head, self.has_reference = model, tokenizer, value_head, has_reference
        self.model.eval()  # dropout off in every role; gradients still flow

    def use(self, name: str) -> None:
        self.model.base_model.set_adapter(name)

    def reference_context(self):
        """Context in which the model computes reference log-probs."""
        if self.has_reference:
            self.use(REFERENCE)
            return torch.no_grad()
        return _DisabledAdapter(self.model)

    @property
    def trunk(self):
        """The transformer without the LM head (the active adapter applies)."""
        return self.model.get_base_model().model

    def trainable_parameters(self) -> dict[str, list[torch.nn.Parameter]]:
        """Policy and value parameters (the reference stays frozen)."""
        groups = {POLICY: [], VALUE: []}
        for name, param in self.model.named_parameters():
            for adapter in groups:
                if f".{adapter}." in name:
                    groups[adapter].append(param)
        groups[VALUE].extend(self.value_head.parameters())
        return groups


class _DisabledAdapter:
    def __init__(self, model):
        self.model, self.inner, self.grad = model, None, torch.no_grad()

    def __enter__(self):
        self.grad.__enter__()
        self.inner = self.model.disable_adapter()
        self.inner.__enter__()

    def __exit__(self, *exc):
        self.inner.__exit__(*exc)
        self.grad.__exit__(*exc)


def build_actor_critic(recipe, sft_dir: Path | None, reward_dir: Path | None) -> ActorCritic:
    """Load the base once; the policy starts from the SFT adapter (a fresh LoRA without one)."""
    cfg = recipe.model
    base, tokenizer = load_base(cfg.base, dtype=cfg.dtype, load_in_4bit=cfg.load_in_4bit, cache_dir=cfg.cache_dir)
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=0.0, target_modules=_targets(cfg.lora),
                      task_type="CAUSAL_LM")
    if sft_dir is not None:
        model = PeftModel.from_pretrained(base, str(sft_dir), adapter_name=POLICY, is_trainable=True)
        model.load_adapter(str(sft_dir), adapter_name=REFERENCE, is_trainable=False)
    else:
        log.warning("no SFT adapter: the policy starts as a fresh LoRA on the base, the reference is the base")
        model = get_peft_model(base, lora, adapter_name=POLICY)
    model.add_adapter(VALUE, lora)
    hidden = model.get_base_model().config.hidden_size
    value_head = torch.nn.Linear(hidden, 1, bias=True, dtype=torch.float32, device=model.device)
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    if reward_dir is not None and recipe.ppo.value_from_reward:
        _init_value_head_from_reward(value_head, reward_dir)
    return ActorCritic(model, tokenizer, value_head, has_reference=sft_dir is not None)


def _targets(lora):
    return lora.target_modules if lora.target_modules == "all-linear" else [
        t.strip() for t in lora.target_modules.split(",")]


def _init_value_head_from_reward(value_head: torch.nn.Linear, reward_dir: Path) -> None:
    """Copy the reward model's score head when it reads the same hidden size (checklist item 16)."""
    from safetensors.torch import load_file

    meta_file = reward_dir / SCORER_META
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    for name in ("adapter_model.safetensors", "model.safetensors"):
        if (reward_dir / name).is_file():
            weights = load_file(reward_dir / name)
            break
    else:
        return
    score = next((v for k, v in weights.items() if k.split(".")[-2:] == ["score", "weight"]
                  or k.endswith("score.modules_to_save.default.weight")), None)
    if score is None or score.shape[-1] != value_head.weight.shape[-1]:
        log.info("value head starts at zero: the reward model (%s) has no score head of width %d",
                 meta.get("backbone", "?"), value_head.weight.shape[-1])
        return
    with torch.no_grad():
        value_head.weight.copy_(score.reshape(1, -1).float())
    log.info("value head initialised from the reward model's score head")
