"""The report's comparison of methods: a row per method with its gold, win rate, compliance, diversity and KL beside
its costs from the run folder, and the RL stages' validation curves against completions sampled."""

import json

from rlhf_ads.evaluation.comparison import COLUMNS, comparison_rows, method_costs, validation_curves

METHODS = ["sft", "ppo", "dpo", "grpo", "rloo", "best_of_n"]


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def fake_run(run_dir):
    write(run_dir / "pipeline.json", {"seconds": {"sft": 95.0, "ppo": 120.0}, "peak_rss_mb": {"ppo": 2100.0}})
    write(run_dir / "sft/metrics.json", {"metrics": {"sft/train_seconds": 80.0, "sft/train_rows": 192}, "config": {}})
    write(run_dir / "ppo/metrics.json", {"metrics": {}, "config": {"ppo": {"steps": 8, "batch_size": 8}}})
    write(run_dir / "ppo/eval.jsonl", "".join(json.dumps({"step": s, "ppo/eval/reward": r, "ppo/eval/gold": g}) + "\n"
                                              for s, r, g in ((0, 0.1, 0.5), (2, 0.3, 0.55))))
    write(run_dir / "dpo/metrics.json", {"metrics": {"dpo/train_seconds": 300.0, "dpo/peak_rss_mb": 1800.0,
                                                     "dpo/train_pairs": 960}, "config": {"dpo": {}}})
    for stage in ("grpo", "rloo"):
        write(run_dir / f"{stage}/metrics.json", {"metrics": {f"{stage}/train_seconds": 110.0, f"{stage}/completions": 64,
                                                              f"{stage}/peak_rss_mb": 1900.0}, "config": {stage: {}}})
        write(run_dir / f"{stage}/train_log.jsonl", "".join(json.dumps(e) + "\n" for e in (
            {f"{stage}/eval/reward": 0.1, f"{stage}/eval/gold": 0.5, f"{stage}/eval/completions": 0, "step": 0},
            {"loss": 0.1, "reward": 0.2, "step": 1},
            {f"{stage}/eval/reward": 0.4, f"{stage}/eval/gold": 0.6, f"{stage}/eval/completions": 16, "step": 2})))


def fake_metrics():
    metrics = {}
    for i, name in enumerate(METHODS):
        metrics.update({f"eval/{name}/gold": 0.5 + i / 100, f"eval/{name}/gold_low": 0.45, f"eval/{name}/gold_high": 0.6,
                        f"eval/{name}/compliance": 0.9, f"eval/{name}/compliance_low": 0.8,
                        f"eval/{name}/compliance_high": 1.0, f"eval/{name}/distinct_2": 0.7,
                        f"eval/{name}/kl_to_sft": 0.0 if name == "sft" else 1.5})
        if name != "sft":
            metrics.update({f"eval/{name}/win_rate_vs_sft_gold": 0.6, f"eval/{name}/win_rate_vs_sft_gold_low": 0.5,
                            f"eval/{name}/win_rate_vs_sft_gold_high": 0.7})
    metrics["eval/best_of_n/kl_to_sft"] = 0.64
    metrics["eval/best_of_n/generate_seconds"] = 42.0
    return metrics


def test_the_table_has_a_row_for_every_method_with_its_costs(tmp_path):
    fake_run(tmp_path)
    rows = comparison_rows(fake_metrics(), METHODS, method_costs(tmp_path, METHODS, best_of_n=4))
    table = {row[0]: dict(zip(COLUMNS, row)) for row in rows}
    assert list(table) == METHODS and all(len(row) == len(COLUMNS) for row in rows)
    assert table["grpo"]["gold [95% CI]"] == "0.530 [0.450, 0.600]"
    assert table["sft"]["win rate vs sft (gold) [95% CI]"] == "-" and table["ppo"]["compliance [95% CI]"] == "0.900 [0.800, 1.000]"
    assert table["best_of_n"]["KL to sft"] == "<= 0.64" and table["dpo"]["KL to sft"] == "1.50"
    assert table["sft"]["wall time"] == "95 s (training 80 s)" and table["ppo"]["wall time"] == "120 s"
    assert table["dpo"]["wall time"] == "training 300 s"  # run alone: the stage's own record only
    assert table["best_of_n"]["wall time"] == "0 s (+42 s sampling at evaluation)"
    assert table["ppo"]["peak memory"] == "2,100 MiB" and table["sft"]["peak memory"] == "-"
    assert [table[m]["training data"] for m in METHODS] == ["192 rows", "64 completions", "960 pairs", "64 completions",
                                                          "64 completions", "none; 4 samples an ad"]


def test_validation_curves_share_the_completions_axis(tmp_path):
    fake_run(tmp_path)
    curves = validation_curves(tmp_path, METHODS)
    assert [p["completions"] for p in curves["ppo"]] == [0, 16]  # steps x PPO's batch of 8
    assert curves["grpo"] == [{"completions": 0, "reward": 0.1, "gold": 0.5}, {"completions": 16, "reward": 0.4, "gold": 0.6}]
    assert set(curves) == {"ppo", "grpo", "rloo"} and set(validation_curves(tmp_path, ["sft", "dpo"])) == set()


def test_ppo_best_learned_from_the_completions_sampled_up_to_its_step(tmp_path):
    fake_run(tmp_path)
    write(tmp_path / "ppo/best/best.json", {"step": 2, "ppo/eval/reward": 0.3})
    costs = method_costs(tmp_path, ["ppo", "ppo_best"], best_of_n=4)
    assert costs["ppo"]["data"] == "64 completions" and costs["ppo_best"]["data"] == "16 completions"
    assert costs["ppo_best"]["stage_seconds"] == 120.0  # the PPO stage that wrote both
