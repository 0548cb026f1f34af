"""DPO, GRPO and RLOO through the real CLI on a tiny model, from one SFT adapter, then `evaluate` with best-of-n: each
changes the adapter's weights and logs its reward components; the report compares every method; GRPO resumes."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rlhf_ads import cli
from rlhf_ads.best_of_n import best_of_n_kl
from tests.helpers import run_cli

METHODS = ("dpo", "grpo", "rloo")
TRAINING = {"max_steps": 2, "batch_size": 2, "max_train_rows": 4, "max_eval_rows": 2, "learning_rate": 0.01,
            "warmup_ratio": 0, "logging_steps": 1, "max_length": 1024, "save_steps": 1}
ONLINE = {"steps": 2, "prompts_per_step": 1, "num_generations": 2, "max_new_tokens": 4, "eval_every": 2,
          "eval_num_prompts": 2, "training": {"learning_rate": 0.01, "save_steps": 1}}
SPREAD = "def spread(completions, prompts, **columns):\n    return [sum(map(ord, c)) % 11 / 11 for c in completions]\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir):
    """`rlhf-ads pipeline` over the recipe's own `pipeline:` (sft, dpo, grpo, rloo, evaluate): the work folder."""
    folder = tmp_path_factory.mktemp("beyond-ppo")
    (folder / "spread.py").write_text(SPREAD)
    recipe = {"model": {"base": str(tiny_model_dir), "dtype": "fp32", "use_lora": True, "lora": {"r": 4, "alpha": 8}},
              "pipeline": ["sft", "dpo", "grpo", "rloo", "evaluate"],
              "sft": {"training": TRAINING, "num_samples": 0}, "dpo": {"training": TRAINING},
              "grpo": ONLINE, "rloo": ONLINE,
              "rewards": [{"function": f"{folder / 'spread.py'}:spread", "name": "spread"},
                          {"function": "keyword_coverage", "name": "kw", "weight": 0.5, "normalize": True}],
              "evaluate": {"models": ["sft", *METHODS, "best_of_n"], "best_of_n": 2, "num_briefs": 5, "batch_size": 5,
                           "max_new_tokens": 4, "report_samples": 1}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    done = run_cli("pipeline", "recipe.yaml", "output_dir=out", cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def log_of(run, stage):
    return [json.loads(line) for line in (run / f"out/quickstart/{stage}/train_log.jsonl").read_text().splitlines()]


def test_each_method_trains_the_sft_adapter_and_logs_its_rewards(run):
    out = run / "out/quickstart"
    assert json.loads((out / "pipeline.json").read_text())["seconds"].keys() == {"sft", *METHODS, "evaluate"}
    sft = load_file(out / "sft/adapter_model.safetensors")
    for stage in METHODS:
        trained = load_file(out / stage / "adapter_model.safetensors")
        assert trained.keys() == sft.keys(), stage  # the SFT adapter, trained further
        assert any(not torch.equal(trained[k], sft[k]) for k in sft), f"{stage} left the adapter as it was"
        assert not (out / stage / "ref").exists()  # TRL's frozen copy of the SFT adapter is not saved
        metrics = json.loads((out / stage / "metrics.json").read_text())["metrics"]
        assert metrics[f"{stage}/train_seconds"] > 0 and metrics[f"{stage}/peak_rss_mb"] > 0
    assert all("loss" in e and "rewards/accuracies" in e for e in log_of(run, "dpo") if "loss" in e)
    for stage in ("grpo", "rloo"):
        steps = [e for e in log_of(run, stage) if "reward" in e]
        assert [e["step"] for e in steps] == [1, 2]
        for name in ("spread", "kw"):  # each component under its own name: TRL's rewards/<name>, ours reward/<name>
            assert all(f"rewards/{name}/mean" in e and f"reward/{name}" in e for e in steps), (stage, name)
        validations = [e for e in log_of(run, stage) if f"{stage}/eval/reward" in e]
        assert [e[f"{stage}/eval/completions"] for e in validations] == [0, 4]  # before, and after 2 steps x 1 x 2
        assert all(f"{stage}/eval/gold" in e and f"{stage}/eval/spread" in e for e in validations)


def test_the_report_compares_every_method(run):
    report_dir = run / "out/quickstart/report"
    metrics = json.loads((report_dir / "metrics.json").read_text())["metrics"]
    for name in ("sft", *METHODS, "best_of_n"):
        for key in ("gold", "gold_low", "compliance", "distinct_2", "kl_to_sft", "generate_seconds"):
            assert f"eval/{name}/{key}" in metrics, (name, key)
    assert metrics["eval/best_of_n/kl_to_sft"] == pytest.approx(best_of_n_kl(2))
    report = (report_dir / "report.html").read_text()
    table = report.split("<h2>Methods compared</h2>")[1].split("</table>")[0]
    assert all(f"<td class=text>{name}</td>" in table for name in ("sft", *METHODS, "best_of_n"))
    assert "&lt;= 0.19" in table and "4 pairs" in table and "4 completions" in table
    assert "completions each RL method has sampled" in report  # the GRPO and RLOO validation curves


def test_grpo_resumes_from_its_checkpoint(run, monkeypatch):
    """Finished at 2 steps, asked for 3 with --resume: steps 1-2 come from the checkpoint, step 3 is new (the CLI
    in this process: the pipeline above ran it as a subprocess already)."""
    monkeypatch.chdir(run)
    before = [e for e in log_of(run, "grpo") if "reward" in e]
    assert cli.main(["grpo", "recipe.yaml", "output_dir=out", "grpo.steps=3", "--resume"]) == 0
    after = [e for e in log_of(run, "grpo") if "reward" in e]
    assert [e["step"] for e in after] == [1, 2, 3] and after[:2] == before
    metrics = json.loads((run / "out/quickstart/grpo/metrics.json").read_text())["metrics"]
    assert metrics["grpo/steps"] == 3 and metrics["grpo/completions"] == 6
    # the running normalization went on from the checkpoint's: 2 completions per step, not 2 since the resume
    checkpoints = run / "out/quickstart/grpo/checkpoints"
    counts = [json.loads((checkpoints / f"checkpoint-{step}/reward_normalization.json").read_text())["kw"]["count"]
              for step in (2, 3)]
    assert counts == [4, 6]
