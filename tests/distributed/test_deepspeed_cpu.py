"""DeepSpeed ZeRO-2 on the CPU: the sft and reward stages in two processes under `accelerate launch --config_file
recipes/accelerate/zero2_cpu.yaml` with DS_ACCELERATOR=cpu (a gloo group). Both ranks train, ZeRO shards
the optimizer over both, parameters stay equal, outputs are written once. The config itself is validated
in test_accelerate_configs.py, with or without DeepSpeed."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from tests.distributed.test_data_parallel import launch, tiny_sft_recipe
from tests.helpers import REPO, launch_two_ranks, tiny_ppo, write_length_reward

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                 reason="DeepSpeed is not installed here (pip install 'rlhf-ads[deepspeed]')")]


def tiny_reward_recipe(tmp_path, model_dir) -> dict:
    """Two pairwise reward-model steps of batch 2 (LoRA + score head on the tiny model), a checkpoint after each."""
    return {"model": {"base": str(model_dir), "dtype": "fp32", "use_lora": True},
            "output_dir": str(tmp_path / "runs"),
            "reward": {"training": {"max_steps": 2, "batch_size": 2, "max_train_rows": 8, "max_eval_rows": 4,
                                    "save_steps": 1, "logging_steps": 1, "max_length": 1024, "report_to": "jsonl"}}}


@pytest.mark.parametrize("stage, make_recipe, weights", [("sft", tiny_sft_recipe, "adapter_model.safetensors"),
                                                         ("reward", tiny_reward_recipe, "adapter_model.safetensors")])
def test_zero2_two_cpu_ranks_train_equal_and_write_once(tmp_path, tiny_model_dir, stage, make_recipe, weights):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(make_recipe(tmp_path, tiny_model_dir)))
    launch_two_ranks(REPO / f"scripts/{stage}.py", "--config", str(tmp_path / "recipe.yaml"), cwd=tmp_path,
                     deepspeed_config="zero2_cpu.yaml", fingerprints=tmp_path / "fingerprints")

    ranks = [json.loads(p.read_text()) for p in sorted((tmp_path / "fingerprints").glob(f"{stage}-rank*.json"))]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["steps"] == 2 for r in ranks)
    assert ranks[0]["sha256"] == ranks[1]["sha256"]
    out = tmp_path / "runs/quickstart" / stage
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [e for e in logged if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2]  # one writer
    assert steps[-1]["epoch"] == 1.0  # 8 rows in 2 steps of 2 rows: the Trainer saw a world of 2
    shards = sorted(p.name for p in (out / "checkpoints/checkpoint-2/global_step2").glob("zero_pp_rank_*"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    assert (out / weights).is_file() and (out / "metrics.json").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]


def launch_ppo(tmp_path: Path, accelerate_config: str, run_dir: str, recipe: dict, *overrides: str) -> None:
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    launch_two_ranks(REPO / "scripts/ppo.py", "--config", str(tmp_path / "recipe.yaml"),
                     f"output_dir={tmp_path / run_dir}", *overrides, cwd=tmp_path,
                     deepspeed_config=accelerate_config, fingerprints=tmp_path / run_dir / "fingerprints")


@pytest.mark.parametrize("accelerate_config", ["zero2_cpu.yaml", "zero3_cpu.yaml"])
def test_ppo_on_a_deepspeed_engine_trains_equal_ranks_and_resumes_exactly(tmp_path, tiny_model_dir,
                                                                          accelerate_config):
    """PPO's adapters and value head in a ZeRO engine over two CPU ranks: the ranks end equal, each writes
    its ZeRO shard into the checkpoint, the main process everything else once; a run stopped after step 2
    and resumed (with gradient checkpointing) gives the metrics of an uninterrupted run (without); and the
    run trains as plain data parallel does, to float tolerance, the critic warm-up of step 1 included."""
    from rlhf_ads.ppo.trainer import without_timings

    recipe = {"model": {"base": str(tiny_model_dir), "dtype": "fp32"},
              "rewards": [{"function": write_length_reward(tmp_path), "name": "mine"}],
              "ppo": tiny_ppo(steps=3, critic_warmup_steps=1, batch_size=2, max_new_tokens=4,
                              training={"grad_accum": 2, "learning_rate": 0.01})}
    launch_ppo(tmp_path, accelerate_config, "straight", recipe)
    # the resumed run also recomputes activations in the backward pass: the recompute must run each role's
    # layers with that role's adapter, though DeepSpeed's one backward comes after the switch to the value's
    checkpointed = "ppo.training.gradient_checkpointing=true"
    launch_ppo(tmp_path, accelerate_config, "resumed", recipe, "ppo.steps=2", checkpointed)
    launch_ppo(tmp_path, accelerate_config, "resumed", recipe, "ppo.training.resume=true", checkpointed)

    ranks = [json.loads(p.read_text()) for p in sorted((tmp_path / "straight/fingerprints").glob("ppo-rank*.json"))]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["steps"] == 3 for r in ranks)
    assert ranks[0]["sha256"] == ranks[1]["sha256"]
    out = tmp_path / "straight/quickstart/ppo"
    straight = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in straight] == [1, 2, 3]  # one writer
    assert "ppo/policy_loss" not in straight[0] and "ppo/policy_loss" in straight[2]  # the critic warm-up
    shards = sorted(p.name for p in (out / "checkpoints/checkpoint-3/zero/state").glob("zero_pp_rank_*optim_states.pt"))
    assert len(shards) == 2 and shards[0].startswith("zero_pp_rank_0") and shards[1].startswith("zero_pp_rank_1")
    assert (out / "policy/adapter_model.safetensors").is_file() and (out / "value_head.safetensors").is_file()
    resumed = [json.loads(line) for line in (tmp_path / "resumed/quickstart/ppo/metrics.jsonl").read_text().splitlines()]
    assert [without_timings(m) for m in resumed] == [without_timings(m) for m in straight]

    (tmp_path / "plain").mkdir()
    launch(tmp_path / "plain", "ppo", dict(recipe, output_dir=str(tmp_path / "plain")))
    plain = [json.loads(line) for line in (tmp_path / "plain/quickstart/ppo/metrics.jsonl").read_text().splitlines()]
    assert straight[2]["ppo/kl"] > 1e-3  # the policy moved, so equal metrics mean equal training
    for zero, data_parallel in zip(straight, plain):
        assert without_timings(zero) == pytest.approx(without_timings(data_parallel), rel=1e-3, abs=1e-5)


def test_zero3_rollout_gathers_the_weights_once_not_per_token(tmp_path, tiny_model_dir):
    """Under ZeRO-3 a rollout's all-gathers do not grow with its length (one gather of every weight),
    while ZeRO-3's per-layer hooks alone gather every layer again for each new token."""
    recipe = {"model": {"base": str(tiny_model_dir), "dtype": "fp32"}, "ppo": {"batch_size": 2, "mini_batch_size": 2}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    done = launch_two_ranks(REPO / "tests/distributed/zero3_rollout_gathers.py", str(tmp_path / "recipe.yaml"),
                            cwd=REPO, deepspeed_config="zero3_cpu.yaml")
    counts = json.loads(done.stdout.split("GATHERS ", 1)[1].splitlines()[0])
    assert counts["gathered_once/4"] == counts["gathered_once/8"] > 0
    assert counts["per_layer_hooks/8"] > counts["per_layer_hooks/4"] > 2 * counts["gathered_once/4"]


def test_qlora_ppo_runs_under_zero3(tmp_path, tiny_model_dir):
    """The QLoRA ZeRO-3 recipe's PPO: a 4-bit base (stored in the compute dtype) under ZeRO-3 on two CPU ranks.
    transformers refuses a device_map under ZeRO-3, so 4-bit bases load without one there; the ranks end equal."""
    recipe = {"model": {"base": str(tiny_model_dir), "dtype": "bf16", "load_in_4bit": True, "use_lora": True},
              "rewards": [{"function": write_length_reward(tmp_path), "name": "mine"}],
              "ppo": tiny_ppo(steps=2, batch_size=2, max_new_tokens=4)}
    launch_ppo(tmp_path, "zero3_cpu.yaml", "qlora", recipe)
    ranks = [json.loads(p.read_text()) for p in sorted((tmp_path / "qlora/fingerprints").glob("ppo-rank*.json"))]
    assert [r["steps"] for r in ranks] == [2, 2] and ranks[0]["sha256"] == ranks[1]["sha256"]
    assert (tmp_path / "qlora/quickstart/ppo/policy/adapter_model.safetensors").is_file()
