"""Sampling from merged weights: a plain copy of the causal LM whose LoRA-adapted linear layers hold the base
weight plus the policy adapter's delta, rebuilt from the base weights and the adapter before each rollout.

Decoding through PEFT runs each adapted linear as three thin matmuls plus casts per token; the merged copy
runs one. Nothing is merged in place, so the base (and, on a 4-bit base, its quantized weights) never drifts:
each refresh computes W + delta in fp32 from the stored base weight and casts once. Every other weight
(embeddings, norms, the LM head) is shared with the PEFT model, not copied; the adapted linears cost one
dense copy in the compute dtype (on a 4-bit base that is the dequantized model).
"""

from __future__ import annotations

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from rlhf_ads.modeling import contiguous_head_input


def _dense_weight(layer: LoraLayer) -> torch.Tensor:
    """The base layer's weight (out, in) in fp32, dequantized when it is 4-bit."""
    base = layer.get_base_layer()
    quant_state = getattr(base.weight, "quant_state", None)
    if quant_state is None:
        return base.weight.detach().to(torch.float32, copy=True)
    from bitsandbytes.functional import dequantize_4bit

    return dequantize_4bit(base.weight.data, quant_state).float()


class MergedPolicy:
    """A plain model equal to `peft_model` with `adapter` merged in; `refresh()` rebuilds the merged weights
    from the current adapter. `model` generates like the PEFT model, without adapter branches."""

    def __init__(self, peft_model: PeftModel, adapter: str, dtype: torch.dtype):
        base = peft_model.get_base_model()
        self.adapter = adapter
        layers = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
        with torch.device("meta"):
            self.model = type(base)(base.config)
        self.model.eval().requires_grad_(False)
        self.model.generation_config = base.generation_config
        contiguous_head_input(self.model)
        adapted = tuple(f"{name}." for name in layers)
        for name, param in base.named_parameters(remove_duplicate=False):
            if not name.startswith(adapted):  # shared, not copied (tied weights stay tied)
                _set(self.model, name, param)
        for name, buffer in base.named_buffers(remove_duplicate=False):
            if not name.startswith(adapted):
                _set(self.model, name, buffer)
        self.pairs: list[tuple[LoraLayer, torch.nn.Linear]] = []  # (adapted layer, its dense twin)
        for name, layer in layers.items():
            target = self.model.get_submodule(name)
            base_layer = layer.get_base_layer()
            target.weight = torch.nn.Parameter(torch.empty(target.weight.shape, dtype=dtype,
                                                           device=base_layer.weight.device), requires_grad=False)
            if base_layer.bias is not None:
                target.bias = base_layer.bias
            self.pairs.append((layer, target))
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> torch.nn.Module:
        """Rebuild every adapted weight as base + delta (computed in fp32, cast once); returns the model."""
        for layer, target in self.pairs:
            weight = _dense_weight(layer)
            if self.adapter in layer.lora_A:
                weight += layer.get_delta_weight(self.adapter).float()
            target.weight.copy_(weight)
        return self.model


def _set(model: torch.nn.Module, dotted: str, tensor: torch.Tensor) -> None:
    owner, _, attr = dotted.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    if isinstance(tensor, torch.nn.Parameter):
        module._parameters[attr] = tensor
    else:
        module._buffers[attr] = tensor
