"""The memory design: one base (optionally 4-bit) carrying LoRA adapters for the policy, the frozen
reference (the SFT adapter) and the value function, plus a small value head (`ActorCritic`); or, for
users who want them, separate models per role (`SeparateActorCritic`, `ppo.models: separate`).

Both expose the same surface to the PPO loop: `use(POLICY | VALUE)`, `model` (the active role's LM),
`trunk` (its transformer without the LM head), `reference_context()`, `value_head`,
`trainable_parameters()`, `save_weights(folder)` / `load_weights(folder)`."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file

from rlhf_ads.checkpoint import saved_weights
from rlhf_ads.errors import RlhfAdsError
from rlhf_ads.modeling import SCORER_META, decoder_layers, load_base
from rlhf_ads.ppo.compiled import compile_layers, eager as compiled_eager
from rlhf_ads.ppo.merged import MergedPolicy
from rlhf_ads.ppo.rollout import causal_lm_parts
from rlhf_ads.private_apis import fuse_lora_linears, keep_4bit_layers_differentiable

log = logging.getLogger(__name__)
POLICY, REFERENCE, VALUE = "policy", "reference", "value"
VALUE_HEAD = "value_head.safetensors"


class ActorCritic:
    """Policy, reference and value as adapters on one base. `use(name)` switches the active adapter;
    with no SFT adapter the reference is the base with adapters disabled. With a shared critic
    (`ppo.critic: shared`) there is no value adapter: the value head reads the policy's hidden states."""

    def __init__(self, model: PeftModel, tokenizer, value_head: torch.nn.Linear, has_reference: bool,
                 shared_critic: bool = False):
        self.model, self.tokenizer, self.value_head, self.has_reference = model, tokenizer, value_head, has_reference
        self.shared_critic = shared_critic
        self.merged: MergedPolicy | None = None
        self.compiled = False
        self.model.eval()  # dropout off in every role; gradients still flow

    def merge_for_sampling(self, dtype: torch.dtype) -> None:
        """Decode rollouts from merged weights in `dtype` (ppo.sampling: merged) from now on."""
        self.merged = MergedPolicy(self.model, POLICY, dtype)

    def sampler(self) -> torch.nn.Module:
        """The model rollouts decode with: the merged copy, rebuilt from the current policy adapter, or the PEFT
        model with the policy adapter active."""
        self.use(POLICY)
        return self.model if self.merged is None else self.merged.refresh()

    def compile(self) -> int:
        """ppo.compile: the base's transformer layers compile for the update's and the rollout's scoring passes
        (ppo/compiled.py); rollouts from the merged copy decode through a compiled step. Returns the layers."""
        self.compiled = True
        return compile_layers(self.model)

    @property
    def compiled_decoding(self) -> bool:
        """Whether rollouts decode through a compiled step (ppo/decoding.py)."""
        return self.compiled and self.merged is not None

    def decoding(self):
        """The context rollouts decode in: compiled layers of the PEFT model run eagerly there (the KV cache
        changes shape every token); the merged copy's own compiled step is left on."""
        return compiled_eager() if self.compiled and self.merged is None else contextlib.nullcontext()

    def use(self, name: str) -> None:
        """Make adapter `name` the active one (PEFT turns requires_grad on for it, off for the others); with a
        shared critic, VALUE is the policy."""
        self.model.base_model.set_adapter(POLICY if self.shared_critic and name == VALUE else name)

    @property
    def lm_head(self) -> torch.nn.Module:
        return self.model.get_output_embeddings()

    @contextlib.contextmanager
    def reference_context(self):
        """The frozen reference for the passes inside, without gradients: the SFT adapter, or the base with
        adapters disabled when there is none. The adapter active before is active again after, and the
        reference's weights never require grad."""
        if not self.has_reference:
            with torch.no_grad(), self.model.disable_adapter():
                yield
            return
        previous = self.model.base_model.active_adapter
        self.model.base_model.set_adapter(REFERENCE, inference_mode=True)  # active, not trainable
        try:
            with torch.no_grad():
                yield
        finally:
            self.use(previous)

    @property
    def trunk(self):
        """The transformer without the LM head (the active adapter applies)."""
        return causal_lm_parts(self.model)[0]

    def trainable_parameters(self) -> dict[str, list[torch.nn.Parameter]]:
        """Policy and value parameters (the reference stays frozen)."""
        groups = {POLICY: [], VALUE: []}
        for name, param in self.model.named_parameters():
            for adapter in groups:
                if f".{adapter}." in name:
                    groups[adapter].append(param)
        groups[VALUE].extend(self.value_head.parameters())
        return groups

    @property
    def adapters(self) -> list[str]:
        """The trained adapters: the policy, and the value unless the critic is shared."""
        return [POLICY] if self.shared_critic else [POLICY, VALUE]

    def save_weights(self, folder: Path) -> None:
        """policy/ (and value/) PEFT adapters and value_head.safetensors under `folder`."""
        self.model.save_pretrained(str(folder), selected_adapters=self.adapters)
        _save_value_head(self.value_head, folder)

    def load_weights(self, folder: Path) -> None:
        """The inverse of save_weights."""
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        for adapter in self.adapters:
            set_peft_model_state_dict(self.model, load_peft_weights(str(folder / adapter)), adapter_name=adapter)
        self.value_head.load_state_dict(load_file(str(folder / VALUE_HEAD)))


class SeparateActorCritic:
    """Policy, reference and value as separate models (each its own copy of the base); the policy and
    value are PEFT models with one trainable adapter each, or plain models trained in full."""

    shared_critic = False
    compiled = compiled_decoding = False  # ppo.compile does not apply to separate models

    def __init__(self, roles: dict[str, torch.nn.Module], tokenizer, value_head: torch.nn.Linear):
        self.roles, self.tokenizer, self.value_head = roles, tokenizer, value_head
        self.active = POLICY
        for model in roles.values():
            model.eval()

    def use(self, name: str) -> None:
        self.active = name

    def sampler(self) -> torch.nn.Module:
        self.use(POLICY)
        return self.model

    def decoding(self):
        return contextlib.nullcontext()

    @property
    def model(self):
        return self.roles[self.active]

    @property
    def trunk(self):
        return causal_lm_parts(self.model)[0]

    @contextlib.contextmanager
    def reference_context(self):
        previous, self.active = self.active, REFERENCE
        try:
            with torch.no_grad():
                yield
        finally:
            self.active = previous

    def trainable_parameters(self) -> dict[str, list[torch.nn.Parameter]]:
        groups = {role: [p for p in self.roles[role].parameters() if p.requires_grad] for role in (POLICY, VALUE)}
        groups[VALUE].extend(self.value_head.parameters())
        return groups

    def save_weights(self, folder: Path) -> None:
        for role in (POLICY, VALUE):
            model = self.roles[role]
            if isinstance(model, PeftModel):  # one adapter, saved flat in folder/role like the shared design
                staging = folder / f".{role}-staging"
                model.save_pretrained(str(staging), selected_adapters=[role])  # PEFT writes staging/<role>/
                shutil.rmtree(folder / role, ignore_errors=True)
                (staging / role).replace(folder / role)
                shutil.rmtree(staging)
            else:
                model.save_pretrained(str(folder / role))
        _save_value_head(self.value_head, folder)

    def load_weights(self, folder: Path) -> None:
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        for role in (POLICY, VALUE):
            model = self.roles[role]
            if isinstance(model, PeftModel):
                set_peft_model_state_dict(model, load_peft_weights(str(folder / role)), adapter_name=role)
            else:
                model.load_state_dict(load_file(str(folder / role / "model.safetensors")), strict=False)
        self.value_head.load_state_dict(load_file(str(folder / VALUE_HEAD)))


def _save_value_head(value_head: torch.nn.Linear, folder: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in value_head.state_dict().items()}, str(folder / VALUE_HEAD))


def build_actor_critic(recipe, sft_dir: Path | None, reward_dir: Path | None) -> ActorCritic | SeparateActorCritic:
    """The roles as ppo.models asks; the policy and reference start from the SFT adapter (without one:
    a fresh LoRA, and the base as reference)."""
    if recipe.ppo.models == "separate":
        return build_separate(recipe, sft_dir, reward_dir)
    cfg = recipe.model
    base, tokenizer = load_base(cfg.base, dtype=cfg.dtype, load_in_4bit=cfg.load_in_4bit, cache_dir=cfg.cache_dir)
    if cfg.load_in_4bit:
        keep_4bit_layers_differentiable(base)
    lora = _lora_config(cfg.lora)
    if sft_dir is not None:
        model = PeftModel.from_pretrained(base, str(sft_dir), adapter_name=POLICY, is_trainable=True)
        model.load_adapter(str(sft_dir), adapter_name=REFERENCE, is_trainable=False)
    else:
        log.warning("no SFT adapter: the policy starts as a fresh LoRA on the base, the reference is the base")
        model = get_peft_model(base, lora, adapter_name=POLICY)
    shared_critic = critic_kind(recipe, reward_dir) == "shared"
    start_from_reward = reward_dir is not None and recipe.ppo.value_from_reward
    if not shared_critic and not (start_from_reward and _add_reward_adapter_as_value(model, reward_dir)):
        model.add_adapter(VALUE, lora)
    fuse_lora_linears(model)
    value_head = _value_head(recipe, model.get_base_model().config.hidden_size, model.device, reward_dir)
    actor_critic = ActorCritic(model, tokenizer, value_head, has_reference=sft_dir is not None,
                               shared_critic=shared_critic)
    if recipe.ppo.training.gradient_checkpointing:
        checkpoint_layers(model)
    return actor_critic


def build_separate(recipe, sft_dir: Path | None, reward_dir: Path | None) -> SeparateActorCritic:
    """One base copy per role. With model.use_lora the policy trains a LoRA adapter (from the SFT
    adapter when there is one) and the value a fresh one; without, both train all weights, starting
    from the base with the SFT adapter merged in. The reference is frozen."""
    cfg = recipe.model
    if recipe.ppo.critic == "shared":
        raise RlhfAdsError("ppo.critic=shared needs ppo.models=shared (the value head reads the policy's trunk); "
                           "with separate models use ppo.critic=adapter")
    if cfg.load_in_4bit and not cfg.use_lora:
        raise RlhfAdsError("ppo.models=separate with model.load_in_4bit needs model.use_lora: true (4-bit weights "
                           "cannot be trained directly)")

    def role_model(role: str, trainable: bool):
        base, tokenizer = load_base(cfg.base, dtype=cfg.dtype, load_in_4bit=cfg.load_in_4bit, cache_dir=cfg.cache_dir)
        if cfg.load_in_4bit:
            keep_4bit_layers_differentiable(base)
        if not cfg.use_lora:  # full-parameter roles start from the SFT model (its adapter merged in)
            model = PeftModel.from_pretrained(base, str(sft_dir)).merge_and_unload() if sft_dir is not None else base
            model.requires_grad_(trainable)
        elif sft_dir is not None and role in (POLICY, REFERENCE):
            model = PeftModel.from_pretrained(base, str(sft_dir), adapter_name=role, is_trainable=trainable)
        elif role == REFERENCE:  # no SFT adapter: the plain base
            model = base.requires_grad_(False)
        else:
            model = get_peft_model(base, _lora_config(cfg.lora), adapter_name=role)
        fuse_lora_linears(model)
        return model, tokenizer

    policy, tokenizer = role_model(POLICY, trainable=True)
    reference, _ = role_model(REFERENCE, trainable=False)
    value, _ = role_model(VALUE, trainable=True)
    hidden = (value.get_base_model() if isinstance(value, PeftModel) else value).config.hidden_size
    value_head = _value_head(recipe, hidden, policy.device, reward_dir)
    actor_critic = SeparateActorCritic({POLICY: policy, REFERENCE: reference, VALUE: value}, tokenizer, value_head)
    if recipe.ppo.training.gradient_checkpointing:
        for trained in (policy, value):
            checkpoint_layers(trained)
    return actor_critic


def checkpoint_layers(model: torch.nn.Module) -> None:
    """Keep only each transformer layer's input for the backward pass and recompute the rest there
    (Hugging Face's gradient checkpointing, non-reentrant): activation memory of a forward over (B, L)
    tokens falls from about 20 hidden-size vectors per token and layer to one, for one more forward.

    Hugging Face checkpoints a layer only while that layer is in training mode and gradients are on, so
    the layers alone get the training flag: their submodules stay in eval mode (dropout off), and passes
    without gradients (rollouts, generation with its KV cache) run as before. The
    recompute runs with the adapter that was active in the forward pass: under DeepSpeed the policy's
    and the value's losses go backward together, after the switch to the value adapter."""
    kwargs = {"use_reentrant": False}
    if isinstance(model, PeftModel):
        kwargs["context_fn"] = _recompute_with_forward_adapter(model)
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name is deprecated there
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    layers = decoder_layers(model)
    if not layers:
        raise RlhfAdsError(f"ppo.training.gradient_checkpointing: {type(model).__name__} has no checkpointable layers")
    for layer in layers:
        layer.training = True


def _recompute_with_forward_adapter(model: PeftModel):
    """torch.utils.checkpoint's context_fn: called in the forward pass, it returns (a context for the
    forward, one for the recompute). The second makes the adapter active in that forward pass active
    again for the recompute, then puts back the one active at backward time. It sets PEFT's layer
    attribute directly: PEFT's set_adapter would also turn requires_grad off for the other adapter in
    the middle of a backward pass."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    tuner_layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]

    @contextlib.contextmanager
    def active(adapter):
        previous = [layer._active_adapter for layer in tuner_layers]
        for layer in tuner_layers:
            layer._active_adapter = adapter
        try:
            yield
        finally:
            for layer, name in zip(tuner_layers, previous):
                layer._active_adapter = name

    def context_fn():
        return contextlib.nullcontext(), active(tuner_layers[0]._active_adapter if tuner_layers else None)

    return context_fn


def _lora_config(lora) -> LoraConfig:
    targets = lora.target_modules if lora.target_modules == "all-linear" else [
        t.strip() for t in lora.target_modules.split(",")]
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")


def critic_kind(recipe, reward_dir: Path | None) -> str:
    """ppo.critic as it runs: 'auto' is 'shared' (the value head on the policy's trunk: as good on the bundled
    task and x1.4-1.6 faster per step, README), except where the value function has more to gain from its own
    adapter: separate models, or a LoRA causal reward model on this base for it to start as
    (ppo.value_from_reward)."""
    choice = recipe.ppo.critic
    if choice != "auto":
        return choice
    starts_as_reward = recipe.ppo.value_from_reward and reward_dir is not None and _is_lora_causal_scorer(reward_dir)
    return "adapter" if recipe.ppo.models == "separate" or starts_as_reward else "shared"


def _is_lora_causal_scorer(reward_dir: Path) -> bool:
    """Whether the reward stage's output is a causal score head trained as a LoRA adapter (on the same base)."""
    meta_file = reward_dir / SCORER_META
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    return meta.get("backbone") == "causal" and (reward_dir / "adapter_config.json").is_file()


def _add_reward_adapter_as_value(model: PeftModel, reward_dir: Path) -> bool:
    """Add the value adapter as a copy of the reward model's LoRA adapter when the reward model is one on
    this base (a causal score head trained with LoRA): with its score head as the value head, the critic
    then starts as the reward model. False (nothing added) for a fully trained or an encoder reward model."""
    from peft import set_peft_model_state_dict

    if not _is_lora_causal_scorer(reward_dir):
        return False
    reward_lora = LoraConfig.from_pretrained(str(reward_dir))
    lora = LoraConfig(r=reward_lora.r, lora_alpha=reward_lora.lora_alpha, lora_dropout=0.0,
                      target_modules=reward_lora.target_modules, task_type="CAUSAL_LM")
    weights = {k: v for k, v in load_file(str(reward_dir / "adapter_model.safetensors")).items() if ".lora_" in k}
    model.add_adapter(VALUE, lora)
    try:
        result = set_peft_model_state_dict(model, weights, adapter_name=VALUE)
        problem = next((k for k in result.missing_keys if f".{VALUE}." in k and ".lora_" in k), None)
    except RuntimeError as exc:  # shapes of another base
        problem = str(exc).splitlines()[0][:200]
    if problem is not None:
        log.warning("the critic starts as a fresh adapter: the reward model's adapter does not fit this base (%s)",
                    problem)
        model.delete_adapter(VALUE)
        return False
    log.info("value adapter initialised from the reward model's adapter (%s)", reward_dir)
    return True


def _value_head(recipe, hidden: int, device, reward_dir: Path | None) -> torch.nn.Linear:
    """A (hidden -> 1) fp32 head, zero or copied from the reward model's score head."""
    value_head = torch.nn.Linear(hidden, 1, bias=True, dtype=torch.float32, device=device)
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    if reward_dir is not None and recipe.ppo.value_from_reward:
        _init_value_head_from_reward(value_head, reward_dir)
    return value_head


def _init_value_head_from_reward(value_head: torch.nn.Linear, reward_dir: Path) -> None:
    """Copy the reward model's score head when it reads the same hidden size, so the critic starts out
    scoring like the reward model (Huang et al. 2024, arXiv 2403.17031)."""
    meta_file = reward_dir / SCORER_META
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    saved = saved_weights(reward_dir)
    if saved is None:
        return
    weights = saved[0]
    score = next((v for k, v in weights.items() if k.split(".")[-2:] == ["score", "weight"]
                  or k.endswith("score.modules_to_save.default.weight")), None)
    if score is None or score.shape[-1] != value_head.weight.shape[-1]:
        log.info("value head starts at zero: the reward model (%s) has no score head of width %d",
                 meta.get("backbone", "?"), value_head.weight.shape[-1])
        return
    with torch.no_grad():
        value_head.weight.copy_(score.reshape(1, -1).float())
    log.info("value head initialised from the reward model's score head")
