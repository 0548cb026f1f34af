"""The places where rlhf-ads reaches into a dependency's private API, each wrapped here once.

Each wrapper checks that the private name is still there and fails with the dependency's version and the
fix when it is not; tests/test_private_apis.py checks each against the installed versions, so an
upgrade that renames one fails a test instead of a user's run. Each says what public API would replace it.
"""

from __future__ import annotations

import functools
from types import MethodType
from typing import Callable

from rlhf_ads.errors import RlhfAdsError


def _missing(package: str, name: str, what: str) -> RlhfAdsError:
    from importlib.metadata import version

    return RlhfAdsError(f"{package} {version(package)} has no {name}, which rlhf-ads uses to {what}; "
                        f"install the {package} version setup.cfg allows, or report this at rlhf-ads")


def wrap_trainer_checkpoint_save(trainer, wrap: Callable[[Callable], Callable]) -> None:
    """Replace `trainer._save_checkpoint(model, trial)` with `wrap(original)` (atomic checkpoints).

    Private: transformers.Trainer._save_checkpoint. Public replacement: none yet; TrainerCallback.on_save
    runs after the checkpoint folder is written, too late to write it elsewhere first."""
    save_in_place = getattr(trainer, "_save_checkpoint", None)
    if save_in_place is None:
        raise _missing("transformers", "Trainer._save_checkpoint", "write checkpoints atomically")
    trainer._save_checkpoint = wrap(save_in_place)


def compact_lm_head_on_cpus() -> bool:
    """Make TRL's fused LM head (SFTTrainer's loss) project only labelled positions on CPUs, as it does on
    Triton devices; True when it now does. Idempotent; a TRL without the switch is left as it is (the
    loss is the same either way, only slower).

    Private: trl.trainer.utils._use_triton(device), the device check that picks the compact path. Public
    replacement: none yet; an SFTConfig option to choose the compact path on any device would do."""
    import trl.trainer.utils as trl_utils

    uses_compact_path = getattr(trl_utils, "_use_triton", None)
    if uses_compact_path is None:
        return False
    if getattr(uses_compact_path, "includes_cpu", False):
        return True

    def compact_on_cpu_too(device) -> bool:
        return device.type == "cpu" or uses_compact_path(device)

    compact_on_cpu_too.includes_cpu = True
    trl_utils._use_triton = compact_on_cpu_too
    return True


def restore_zero3_module_hooks(offload) -> None:
    """Register ZeRO-3's per-module hooks again, after the rollout removed them (`offload.forward_hooks` and
    `offload.backward_hooks`) to sample with every weight gathered once; this also resets ZeRO's trace.

    Private: DeepSpeedZeRoOffload._register_deepspeed_module(module). Public replacement: the pair
    `offload.destroy()` / `offload.setup_zero_stage3_hooks()` does the same but pushes the module onto a
    global stack on every call, which would grow by one entry per rollout."""
    register = getattr(offload, "_register_deepspeed_module", None)
    if register is None:
        raise _missing("deepspeed", "DeepSpeedZeRoOffload._register_deepspeed_module",
                       "restore ZeRO-3's hooks after a rollout")
    register(offload.module)


def keep_4bit_layers_differentiable(model) -> int:
    """Keep bitsandbytes' 4-bit layers of `model` in the layout its autograd path reads; returns how many.

    On CPUs with AVX512-BF16, a 4-bit layer in eval mode repacks its weights for a faster inference kernel
    on its first forward without gradients, and from then on runs every forward through that kernel,
    which has no backward: the gradient stops at each 4-bit layer ("gemv_4bit: an autograd kernel was not
    registered"). PPO keeps its modules in eval mode (no dropout) and trains after no-grad rollouts, so
    the repacking is turned off here, before the first forward.

    Private: Linear4bit.support_avx512bf16_for_cpu (set from the CPU's flags in its constructor). Public
    replacement: none yet; a documented switch, or repacking only when no parameter requires grad."""
    from bitsandbytes.nn import Linear4bit

    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    for layer in layers:
        if not hasattr(layer, "support_avx512bf16_for_cpu"):
            raise _missing("bitsandbytes", "Linear4bit.support_avx512bf16_for_cpu", "keep 4-bit layers differentiable")
        if getattr(layer.weight.quant_state, "packing_format_for_cpu", False):
            raise RlhfAdsError("a 4-bit layer was repacked for inference before training: call "
                               "keep_4bit_layers_differentiable before the model's first forward")
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def fuse_lora_linears(model) -> int:
    """Run each of `model`'s LoRA linear layers as base(x) + scaling * (x A^T) B^T in two ops, in the
    compute dtype; returns how many layers now do. Idempotent.

    PEFT's forward casts the input to the adapter's dtype (fp32 adapters on a bf16 base: a full-width copy
    of every activation), scales the adapter's output in a separate pass, adds it with type promotion and
    casts the sum back: four full-width elementwise passes per layer, each also in the backward, which on a
    CPU with AMX or on a GPU cost more than the layer's matmuls. Here the adapter's weights are cast instead
    (r x d, a few KB), the down-projection is one matmul and the up-projection, scaling and sum one addmm.
    The adapter's weights, gradients and optimizer state keep their dtype; its matmuls run in the base's
    dtype as under torch.autocast. Any other case (adapters disabled or merged, several active adapters,
    dropout, DoRA and other variants, a bias on B, extra arguments, weights DeepSpeed ZeRO-3 partitions and
    gathers only around the adapter modules' own calls) takes PEFT's own forward.

    Private: LoraLayer's lora_A/lora_B/scaling/lora_dropout/lora_variant/merged/disable_adapters. Public
    replacement: none; PEFT has no fused or compute-dtype path for the adapter branch."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    layers = [m for m in model.modules() if type(m) is LoraLinear]
    for layer in layers:
        for name in ("lora_A", "lora_B", "scaling", "lora_dropout", "lora_variant", "merged", "disable_adapters",
                     "active_adapters", "base_layer"):
            if not hasattr(layer, name):
                raise _missing("peft", f"lora.Linear.{name}", "fuse the LoRA branch into the base layer's output")
        layer.forward = MethodType(_fused_lora_forward, layer)
    return len(layers)


def _fused_lora_forward(layer, x, *args, **kwargs):
    """x (..., in) -> (..., out): the base layer's output plus the one active adapter's, as one addmm."""
    import torch

    active = layer.active_adapters
    name = active[0] if len(active) == 1 else None
    if (args or kwargs or name is None or layer.disable_adapters or layer.merged or name not in layer.lora_A
            or name in layer.lora_variant or not isinstance(layer.lora_dropout[name], torch.nn.Identity)
            or layer.lora_B[name].bias is not None or hasattr(layer.lora_A[name].weight, "ds_id")):
        return type(layer).forward(layer, x, *args, **kwargs)  # ds_id: ZeRO-3 gathers it in the module's own call
    result = layer.base_layer(x)
    down = torch.nn.functional.linear(x, layer.lora_A[name].weight.to(x.dtype))  # (..., r)
    up = layer.lora_B[name].weight.to(result.dtype)  # (out, r)
    fused = torch.addmm(result.reshape(-1, result.shape[-1]), down.reshape(-1, down.shape[-1]).to(result.dtype),
                        up.t(), alpha=layer.scaling[name])
    return fused.view(result.shape)


def compile_rounding_like_eager(recompile_limit: int = 64) -> None:
    """Make inductor round every intermediate to its dtype as eager PyTorch does, and let one compiled code
    object hold up to `recompile_limit` graphs. Process-wide.

    Without the first, a compiled bf16 layer keeps fused intermediates in fp32, so its graph with gradients
    (the update) and without (the rollout's old log-probs, the reference) round differently: on the bundled
    135M model the log-probs of one response differed by up to 0.25, and PPO's first ratios would not be 1.
    The second: every adapter, and gradients on or off, is one more graph of the same layer code; past
    dynamo's default limit (8) it would fall back to eager silently and the passes would disagree again.

    Private: torch._inductor.config.emulate_precision_casts, torch._dynamo.config.recompile_limit. Public
    replacement: none; torch.compile's options cover neither."""
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    for config, name in ((inductor_config, "emulate_precision_casts"), (dynamo_config, "recompile_limit")):
        if not hasattr(config, name):
            raise _missing("torch", f"{config.__name__}.{name}", "compile the PPO passes with eager rounding")
    inductor_config.emulate_precision_casts = True
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, recompile_limit)


@functools.cache
def compile_generation_on_any_device():
    """A transformers CompileConfig that makes `generate` compile its decoding step (with a static cache) on
    any device, CPUs included; transformers compiles only on accelerators otherwise. One instance for the
    process: a model compiles its step again whenever the config it is given differs from the last one.

    Private: CompileConfig._compile_all_devices. Public replacement: none; transformers documents it as
    'useful for testing purposes'."""
    from transformers import CompileConfig

    config = CompileConfig(dynamic=False, mode="default")
    if not hasattr(config, "_compile_all_devices"):
        raise _missing("transformers", "CompileConfig._compile_all_devices", "compile rollout decoding on CPUs")
    config._compile_all_devices = True
    return config
