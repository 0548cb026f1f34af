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
