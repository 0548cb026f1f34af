"""The report's comparison of methods: one row per evaluated model with what an ad team weighs (gold utility with its
95% interval, the gold-judged win rate against SFT, compliance, distinct-2, KL to SFT) beside what the model cost
to train (wall time, peak memory, the data or completions it learned from); and the validation curves of the RL
stages against completions sampled, the cost they share.

Costs come from what the stages left in the run folder: each stage's metrics.json (`<stage>/train_seconds`,
`<stage>/peak_rss_mb`, the recipe it ran with) and, for what a stage does not record, the pipeline's
pipeline.json (the stage's wall time and peak memory).
"""

from __future__ import annotations

import json
from pathlib import Path

from rlhf_ads.evaluation.stats import format_cell
from rlhf_ads.ppo.validation import BEST, BEST_RECORD

# model name -> the stage that trained it
PPO_BEST = "ppo_best"  # evaluate's name for PPO's policy at its best validation proxy (<ppo>/best/policy)
TRAINED_BY = {"sft": "sft", "ppo": "ppo", PPO_BEST: "ppo", "dpo": "dpo", "grpo": "grpo", "rloo": "rloo"}
BEST_OF_N = "best_of_n"  # evaluate's model that is no checkpoint: the SFT adapter's best of evaluate.best_of_n samples
COLUMNS = ("method", "gold [95% CI]", "win rate vs sft (gold) [95% CI]", "compliance [95% CI]", "distinct-2",
           "KL to sft", "training data", "wall time", "peak memory")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def training_data(stage: str, config: dict, metrics: dict) -> str | None:
    """What a stage learned from, from the recipe it ran with and its metrics: rows, pairs or completions sampled."""
    if stage == "ppo" and "ppo" in config:
        return f"{config['ppo']['steps'] * config['ppo']['batch_size']} completions"
    if stage in ("grpo", "rloo") and f"{stage}/completions" in metrics:
        return f"{metrics[f'{stage}/completions']} completions"
    if stage == "dpo" and "dpo/train_pairs" in metrics:
        return f"{metrics['dpo/train_pairs']} pairs"
    if stage == "sft" and "sft/train_rows" in metrics:
        return f"{metrics['sft/train_rows']} rows"
    return None


def method_costs(run_dir: Path, names: list[str], best_of_n: int) -> dict[str, dict]:
    """name -> {"stage_seconds" (the whole stage, as the pipeline timed it), "train_seconds" (its training alone, as
    the stage recorded it), "peak_rss_mb" (the stage's record, else the pipeline's), "data"} where known; best_of_n
    trains nothing (its sampling time at evaluation is `eval/best_of_n/generate_seconds`)."""
    pipeline = read_json(run_dir / "pipeline.json")
    costs = {}
    for name in names:
        stage = TRAINED_BY.get(name)
        if name == BEST_OF_N:
            costs[name] = {"stage_seconds": 0.0, "data": f"none; {best_of_n} samples an ad"}
        if stage is None:
            continue
        saved = read_json(run_dir / stage / "metrics.json")
        metrics, config = saved.get("metrics", {}), saved.get("config", {})
        costs[name] = {"stage_seconds": pipeline.get("seconds", {}).get(stage),
                       "train_seconds": metrics.get(f"{stage}/train_seconds"),
                       "peak_rss_mb": metrics.get(f"{stage}/peak_rss_mb", pipeline.get("peak_rss_mb", {}).get(stage)),
                       "data": training_data(stage, config, metrics)}
        if name == PPO_BEST and "ppo" in config:
            step = read_json(run_dir / stage / BEST / BEST_RECORD).get("step")
            costs[name]["data"] = None if step is None else f"{step * config['ppo']['batch_size']} completions"
    return costs


def wall_time(cost: dict, sampling_seconds: float | None) -> str:
    """'130 s (training 95 s)', 'training 95 s' outside a pipeline, '0 s (+42 s sampling at evaluation)'."""
    stage, train = cost.get("stage_seconds"), cost.get("train_seconds")
    parts = [f"{stage:.0f} s"] if stage is not None else []
    if train is not None:
        parts.append(f"(training {train:.0f} s)" if parts else f"training {train:.0f} s")
    if sampling_seconds is not None:
        parts.append(f"(+{sampling_seconds:.0f} s sampling at evaluation)")
    return " ".join(parts) or "-"


def comparison_rows(metrics: dict[str, float], names: list[str], costs: dict[str, dict]) -> list[list[str]]:
    """One row of COLUMNS' cells per model, from evaluate's eval/<model>/* metrics and `method_costs`."""
    def cell(name: str, key: str) -> str:
        return format_cell(*(metrics.get(f"eval/{name}/{key}{suffix}") for suffix in ("", "_low", "_high")))

    rows = []
    for name in names:
        cost = costs.get(name, {})
        kl = metrics.get(f"eval/{name}/kl_to_sft")
        memory = cost.get("peak_rss_mb")
        time_cell = wall_time(cost, metrics.get(f"eval/{name}/generate_seconds") if name == BEST_OF_N else None)
        rows.append([name, cell(name, "gold"), cell(name, "win_rate_vs_sft_gold"), cell(name, "compliance"),
                     format_cell(metrics.get(f"eval/{name}/distinct_2"), None, None),
                     "-" if kl is None else f"{'<= ' if name == BEST_OF_N else ''}{kl:.2f}",
                     cost.get("data") or "-", time_cell, "-" if memory is None else f"{memory:,.0f} MiB"])
    return rows


def validation_curves(run_dir: Path, names: list[str]) -> dict[str, list[dict[str, float]]]:
    """RL stage -> its validations, each {"completions", "reward", "gold"(when scored)}: PPO's ppo/eval.jsonl (steps
    times the batch it ran with) and GRPO's and RLOO's <stage>/eval/* entries in their train_log.jsonl."""
    curves = {}
    if "ppo" in names:
        batch = read_json(run_dir / "ppo/metrics.json").get("config", {}).get("ppo", {}).get("batch_size")
        records = read_jsonl(run_dir / "ppo/eval.jsonl")
        if batch and records:
            curves["ppo"] = [_point(r, "ppo/eval", r["step"] * batch) for r in records]
    for stage in ("grpo", "rloo"):
        records = [r for r in read_jsonl(run_dir / stage / "train_log.jsonl") if f"{stage}/eval/reward" in r]
        if stage in names and records:
            curves[stage] = [_point(r, f"{stage}/eval", r[f"{stage}/eval/completions"]) for r in records]
    return curves


def _point(record: dict, prefix: str, completions: int) -> dict[str, float]:
    point = {"completions": completions, "reward": record[f"{prefix}/reward"]}
    if f"{prefix}/gold" in record:
        point["gold"] = record[f"{prefix}/gold"]
    return point
