"""The dependencies' private names rlhf_ads.private_apis relies on are still there, with the signatures it
calls; when an upgrade renames one, these fail here instead of in a user's run."""

import importlib.util
import inspect
from types import SimpleNamespace

import pytest

from rlhf_ads import private_apis
from rlhf_ads.errors import RlhfAdsError


def test_transformers_trainer_still_saves_checkpoints_through_save_checkpoint():
    from transformers import Trainer

    assert list(inspect.signature(Trainer._save_checkpoint).parameters)[:3] == ["self", "model", "trial"]


def test_trainer_save_wrapper_routes_saves_and_names_a_missing_hook():
    calls = []
    trainer = SimpleNamespace(_save_checkpoint=lambda model, trial: calls.append("saved"))
    private_apis.wrap_trainer_checkpoint_save(trainer, lambda save: lambda model, trial=None: [calls.append("around"),
                                                                                               save(model, trial)])
    trainer._save_checkpoint(None, None)
    assert calls == ["around", "saved"]
    with pytest.raises(RlhfAdsError, match=r"transformers .* has no Trainer._save_checkpoint"):
        private_apis.wrap_trainer_checkpoint_save(SimpleNamespace(), lambda save: save)


def test_trl_still_chooses_its_compact_lm_head_path_by_device(monkeypatch):
    import torch
    import trl.trainer.utils as trl_utils

    assert list(inspect.signature(trl_utils._use_triton).parameters) == ["device"]
    monkeypatch.setattr(trl_utils, "_use_triton", lambda device: False)
    assert private_apis.compact_lm_head_on_cpus() and private_apis.compact_lm_head_on_cpus()  # idempotent
    assert trl_utils._use_triton(torch.device("cpu")) and not trl_utils._use_triton(torch.device("meta"))


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed is not installed here")
def test_deepspeed_zero3_offload_still_registers_module_hooks_by_module():
    from deepspeed.runtime.zero.parameter_offload import DeepSpeedZeRoOffload

    assert list(inspect.signature(DeepSpeedZeRoOffload._register_deepspeed_module).parameters)[:2] == ["self", "module"]
    registered = []
    offload = SimpleNamespace(module="the engine's module", _register_deepspeed_module=registered.append)
    private_apis.restore_zero3_module_hooks(offload)
    assert registered == ["the engine's module"]
    with pytest.raises(RlhfAdsError, match="deepspeed .* has no DeepSpeedZeRoOffload._register_deepspeed_module"):
        private_apis.restore_zero3_module_hooks(SimpleNamespace(module=None))


def test_bitsandbytes_4bit_layers_still_choose_their_cpu_inference_kernel_by_a_flag(tiny_model_dir):
    from bitsandbytes.nn import Linear4bit

    from rlhf_ads.modeling import load_base

    model, _ = load_base(str(tiny_model_dir), dtype="fp32", load_in_4bit=True)
    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    assert layers and all(hasattr(layer, "support_avx512bf16_for_cpu") for layer in layers)
    assert private_apis.keep_4bit_layers_differentiable(model) == len(layers)
    assert not any(layer.support_avx512bf16_for_cpu for layer in layers)


def _lora_model(tiny_model_dir, dtype: str, *, fused: bool, scaling_alpha: int = 24):
    """The tiny Llama in `dtype` with a LoRA adapter whose B is non-zero (so the branch counts)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rlhf_ads.modeling import load_base

    model, _ = load_base(str(tiny_model_dir), dtype=dtype)
    torch.manual_seed(0)  # the same A in every copy
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=scaling_alpha, lora_dropout=0.0,
                                             target_modules="all-linear"))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    model.eval()
    if fused:
        assert private_apis.fuse_lora_linears(model) > 0
    return model


def _logits_and_adapter_grads(model, ids):
    """Logits (B, T, V) in fp32 and the adapter weights' gradients (fp32) of a loss on them."""
    logits = model(input_ids=ids).logits.float()
    (logits.logsumexp(-1).mean() + logits[..., 7].mean()).backward()
    return logits.detach(), {n: p.grad.float() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_fused_lora_forward_matches_peft_outputs_and_gradients(tiny_model_dir, dtype):
    """The fused branch is PEFT's sum in another order: equal to rounding in fp32; in bf16 (adapter matmuls in
    the compute dtype, as under autocast) no further from the fp32 result than a few bf16 roundings."""
    import torch

    ids = torch.randint(0, 200, (2, 12), generator=torch.Generator().manual_seed(0))
    expected, expected_grads = _logits_and_adapter_grads(_lora_model(tiny_model_dir, "fp32", fused=False), ids)
    logits, grads = _logits_and_adapter_grads(_lora_model(tiny_model_dir, dtype, fused=True), ids)
    assert grads.keys() == expected_grads.keys() and any("lora_A" in n for n in grads)
    tolerance = 1e-5 if dtype == "fp32" else 3e-2
    assert torch.allclose(logits, expected, atol=tolerance * expected.abs().max())
    for name, grad in grads.items():
        assert (grad - expected_grads[name]).norm() <= tolerance * 4 * expected_grads[name].norm() + 1e-9, name
    for param in _lora_model(tiny_model_dir, dtype, fused=True).parameters():
        if param.requires_grad:  # the adapter keeps PEFT's fp32 weights; only its matmuls run in the compute dtype
            assert param.dtype == torch.float32


def test_fused_lora_forward_leaves_other_cases_to_peft(tiny_model_dir):
    """Adapters disabled, an inactive layer's adapter, and a second active adapter take PEFT's forward."""
    import torch

    ids = torch.randint(0, 200, (1, 9), generator=torch.Generator().manual_seed(1))
    fused = _lora_model(tiny_model_dir, "fp32", fused=True)
    plain = _lora_model(tiny_model_dir, "fp32", fused=False)
    with torch.no_grad(), fused.disable_adapter(), plain.disable_adapter():
        assert torch.equal(fused(input_ids=ids).logits, plain(input_ids=ids).logits)
    with torch.no_grad():
        with_adapter = fused(input_ids=ids).logits
        fused.base_model.set_adapter([])  # no active adapter: the base alone
        assert not torch.allclose(fused(input_ids=ids).logits, with_adapter)
        with plain.disable_adapter():
            assert torch.equal(fused(input_ids=ids).logits, plain(input_ids=ids).logits)
    assert private_apis.fuse_lora_linears(fused) == private_apis.fuse_lora_linears(fused)  # idempotent


def test_lm_head_gets_contiguous_hidden_states(tiny_model_dir):
    """Transformers slices the hidden states before the LM head (logits_to_keep); the head sees them
    contiguous, with the same logits."""
    import torch

    from rlhf_ads.modeling import contiguous_head_input, load_base

    model, _ = load_base(str(tiny_model_dir), dtype="fp32")
    seen = []
    model.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(args[0].is_contiguous()))
    ids = torch.randint(0, 200, (3, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        last = model(input_ids=ids, logits_to_keep=4).logits
        contiguous_head_input(model)  # a second registration is a no-op
        assert torch.allclose(last, model(input_ids=ids).logits[:, -4:], atol=1e-6)
    assert seen == [True, True]
    assert len(model.get_output_embeddings()._forward_pre_hooks) == 1


def test_inductor_still_offers_eager_rounding_and_dynamo_a_recompile_limit(monkeypatch):
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "emulate_precision_casts", False)
    monkeypatch.setattr(dynamo_config, "recompile_limit", 8)
    private_apis.compile_rounding_like_eager()
    assert inductor_config.emulate_precision_casts is True and dynamo_config.recompile_limit == 64


def test_transformers_still_compiles_generation_on_any_device_by_a_flag():
    from transformers.generation.utils import GenerationMixin

    assert "_compile_all_devices" in inspect.getsource(GenerationMixin._valid_auto_compile_criteria)
    config = private_apis.compile_generation_on_any_device()
    assert config._compile_all_devices is True and config.dynamic is False
