"""The accelerate configs under recipes/accelerate/ (and accelerate_config.yaml) load with accelerate's
own config classes; the DeepSpeed ones also build a DeepSpeedPlugin where DeepSpeed is installed."""

import importlib.util
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.utils import DistributedType

from rlhf_ads import config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "recipes" / "accelerate").glob("*.yaml")) + [ROOT / "accelerate_config.yaml"]
DEEPSPEED = {"zero2.yaml": (2, "none"), "zero2_cpu.yaml": (2, "none"), "zero3.yaml": (3, "none"),
             "zero3_cpu.yaml": (3, "none"), "zero3_offload.yaml": (3, "cpu"), "multi_node.yaml": (2, "none")}


def test_every_named_config_is_there():
    assert set(DEEPSPEED) | {"cpu_2proc.yaml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_with_accelerates_classes(path):
    loaded = load_config_from_file(str(path))
    assert isinstance(loaded, ClusterConfig)
    assert loaded.num_processes >= loaded.num_machines >= 1 and 0 <= loaded.machine_rank < loaded.num_machines
    if path.name in DEEPSPEED:
        stage, offload = DEEPSPEED[path.name]
        assert loaded.distributed_type == DistributedType.DEEPSPEED
        assert loaded.deepspeed_config["zero_stage"] == stage
        assert loaded.deepspeed_config["offload_param_device"] == offload
        assert loaded.deepspeed_config["offload_optimizer_device"] == offload
    if loaded.num_machines > 1:
        assert loaded.main_process_ip and loaded.main_process_port


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                    reason="DeepSpeed is not installed here (pip install 'rlhf-ads[deepspeed]'; on CPUs set "
                           "DS_ACCELERATOR=cpu)")
@pytest.mark.parametrize("name", sorted(DEEPSPEED))
def test_deepspeed_plugin_builds_from_config(name):
    from accelerate.utils import DeepSpeedPlugin

    ds = load_config_from_file(str(ROOT / "recipes" / "accelerate" / name)).deepspeed_config
    plugin = DeepSpeedPlugin(zero_stage=ds["zero_stage"], offload_optimizer_device=ds["offload_optimizer_device"],
                             offload_param_device=ds["offload_param_device"],
                             zero3_init_flag=ds.get("zero3_init_flag", False),
                             zero3_save_16bit_model=ds.get("zero3_save_16bit_model", False))
    assert plugin.deepspeed_config["zero_optimization"]["stage"] == ds["zero_stage"]


def test_qlora_zero3_recipe_loads_with_4bit_storage_in_the_compute_dtype():
    from rlhf_ads.modeling import quantization_config

    recipe = config.load(ROOT / "recipes" / "qlora_zero3.yaml")
    assert recipe.model.load_in_4bit and recipe.model.use_lora and recipe.model.dtype == "bf16"
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed")
    quant = quantization_config(recipe.model.dtype)
    assert quant.bnb_4bit_quant_storage == quant.bnb_4bit_compute_dtype  # what ZeRO-3 needs to shard 4-bit weights
