"""DPO, GRPO and RLOO in two CPU ranks under `accelerate launch` (a gloo group), plain data parallel or DeepSpeed
ZeRO-3, from one SFT adapter: each rank runs every step, the adapter trains (gathered whole under ZeRO-3), the
ranks' weights stay equal under plain data parallel (gradients were averaged), the log is written once."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.helpers import REPO, launch_two_ranks
from tests.stages.test_beyond_ppo import ONLINE, SPREAD, TRAINING

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model_dir) -> Path:
    """A folder with the recipe and an SFT adapter trained in one process."""
    from tests.helpers import run_cli

    folder = tmp_path_factory.mktemp("beyond-ppo-ranks")
    (folder / "spread.py").write_text(SPREAD)
    recipe = {"model": {"base": str(tiny_model_dir), "dtype": "fp32", "use_lora": True, "lora": {"r": 4, "alpha": 8}},
              "output_dir": str(folder / "runs"),
              "sft": {"training": TRAINING, "num_samples": 0}, "dpo": {"training": TRAINING},
              "grpo": ONLINE, "rloo": ONLINE,
              "rewards": [{"function": f"{folder / 'spread.py'}:spread", "name": "spread"}]}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    done = run_cli("sft", "recipe.yaml", cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.mark.parametrize("deepspeed_config", [None, "zero3_cpu.yaml"])
@pytest.mark.parametrize("stage", ["dpo", "grpo", "rloo"])
def test_two_ranks_train_equal_adapters_and_write_once(work, stage, deepspeed_config):
    fingerprints = work / f"fingerprints-{stage}-{deepspeed_config}"
    launch_two_ranks(REPO / "scripts" / f"{stage}.py", "--config", str(work / "recipe.yaml"),
                     f"output_dir={work / 'runs' / str(deepspeed_config)}",
                     f"{stage}.sft={work / 'runs/quickstart/sft'}", cwd=work,
                     deepspeed_config=deepspeed_config, fingerprints=fingerprints)
    ranks = [json.loads(p.read_text()) for p in sorted(fingerprints.glob(f"{stage}-rank*.json"))]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["steps"] == 2 for r in ranks)
    if deepspeed_config != "zero3_cpu.yaml":  # under ZeRO-3 each rank holds its own shard of every weight
        assert ranks[0]["sha256"] == ranks[1]["sha256"]
    out = work / "runs" / str(deepspeed_config) / "quickstart" / stage
    sft = load_file(work / "runs/quickstart/sft/adapter_model.safetensors")
    trained = load_file(out / "adapter_model.safetensors")  # whole tensors, gathered under ZeRO-3
    assert trained.keys() == sft.keys() and all(torch.isfinite(t).all() for t in trained.values())
    assert any(not torch.equal(trained[k], sft[k]) for k in sft)
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in logged if "loss" in e] == [1, 2]  # one writer
