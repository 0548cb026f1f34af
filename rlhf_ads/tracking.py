"""Experiment tracking: W&B, TensorBoard or JSONL, on the main process only.

`RunTracker` is a thin layer on accelerate's trackers (`WandBTracker`, `TensorBoardTracker`): the PPO
loop logs its per-step metrics dict and a table of sample generations through it; every stage logs
its resolved config, final metrics and (when `tracking.log_artifacts`) its adapters. The HF/TRL
stages also pass `report_to` to their Trainer (`trainer_report_to`), whose own W&B callback reuses the
run opened here, so the recipe's project, entity, group and tags apply; `JsonlLogCallback` writes
<stage>/train_log.jsonl as training goes.

Only the main process (rlhf_ads.processes) opens runs and writes files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rlhf_ads.config_schema import to_dict
from rlhf_ads.errors import ConfigError
from rlhf_ads.processes import is_main_process, rank

log = logging.getLogger(__name__)
BACKENDS = ("none", "jsonl", "wandb", "tensorboard")
FINGERPRINT_ENV = "RLHF_ADS_PARAM_FINGERPRINT_DIR"


def run_name(recipe, stage: str) -> str:
    return recipe.tracking.name or f"{recipe.run_name}-{stage}"


def trainer_report_to(report_to: str) -> list[str]:
    """The HF Trainer's `report_to` for ours: jsonl is our own callback, not an HF integration."""
    _check_backend(report_to)
    return [report_to] if report_to in ("wandb", "tensorboard") else []


def _check_backend(report_to: str) -> None:
    if report_to not in BACKENDS:
        raise ConfigError(f"report_to '{report_to}' is not one of {', '.join(BACKENDS)}")


class RunTracker:
    """Metrics, sample tables, summaries and artifacts to one accelerate tracker; a no-op for
    report_to none/jsonl and on every process but the main one."""

    def __init__(self, tracker=None, backend: str = "none"):
        self.tracker, self.backend = tracker, backend

    @classmethod
    def start(cls, recipe, stage: str, out_dir: Path, report_to: str) -> RunTracker:
        """Open the run and log the full resolved recipe as its config."""
        _check_backend(report_to)
        if report_to in ("none", "jsonl") or not is_main_process():
            return cls()
        tracker = _make_tracker(recipe, stage, Path(out_dir), report_to)
        tracker.start()
        config = to_dict(recipe)
        if report_to == "tensorboard":  # hparams accept scalars and strings only
            config = {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v) for k, v in _flatten(config).items()}
        tracker.store_init_configuration(config)
        return cls(tracker, report_to)

    @property
    def active(self) -> bool:
        return self.tracker is not None

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Numeric metrics at `step` (non-numeric values are skipped)."""
        if self.active:
            self.tracker.log({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "step"}, step=step)

    def log_samples(self, rows: list[dict[str, Any]], step: int, name: str = "samples") -> None:
        """A table of generations (one dict per row, same keys): a wandb.Table, or markdown text in TensorBoard."""
        if not self.active or not rows:
            return
        columns = list(rows[0])
        data = [[row.get(c) for c in columns] for row in rows]
        if self.backend == "wandb":
            self.tracker.log_table(name, columns=columns, data=data, step=step)
        else:
            header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
            body = "".join("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |\n" for row in data)
            self.tracker.writer.add_text(name, header + body, global_step=step)

    def summary(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Final metrics: the W&B run summary, or scalars at `step` in TensorBoard."""
        if not self.active:
            return
        numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.backend == "wandb":
            self.tracker.run.summary.update(numeric)
        else:
            self.tracker.log(numeric, step=step)

    def log_artifact(self, paths: list[Path], name: str, kind: str = "model") -> None:
        """Upload files and folders as one W&B artifact (other backends: nothing)."""
        if not self.active or self.backend != "wandb":
            return
        import wandb

        artifact = wandb.Artifact(_artifact_name(name), type=kind)
        for path in map(Path, paths):
            if path.is_dir():
                artifact.add_dir(str(path), name=path.name)
            elif path.is_file():
                artifact.add_file(str(path), name=path.name)
        self.tracker.run.log_artifact(artifact)

    def finish(self) -> None:
        if self.active:
            self.tracker.finish()
            self.tracker = None


def _make_tracker(recipe, stage: str, out_dir: Path, report_to: str):
    from accelerate.tracking import TensorBoardTracker, WandBTracker

    track = recipe.tracking
    if report_to == "tensorboard":
        return TensorBoardTracker(run_name(recipe, stage), str(out_dir / "tensorboard"))
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError("report_to: wandb needs the wandb package: pip install 'rlhf-ads[wandb]'") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    init = dict(name=run_name(recipe, stage), entity=track.entity, group=track.group or recipe.run_name,
                tags=list(track.tags) or None, job_type=stage)
    if "WANDB_DIR" not in os.environ:
        init["dir"] = str(out_dir)
    return WandBTracker(track.project, **init)


def _flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _artifact_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def stage_artifact_files(out_dir: Path) -> list[Path]:
    """What a stage's model artifact holds: its top-level weights, adapter and tokenizer files, and the
    policy/ and value/ adapter folders PPO writes."""
    out_dir = Path(out_dir)
    keep_suffixes = (".safetensors", ".json", ".jinja", ".txt", ".model")
    skip = {"metrics.json", "train_log.jsonl", "metrics.jsonl", "samples.jsonl"}
    files = [p for p in out_dir.iterdir() if p.is_file() and p.suffix in keep_suffixes and p.name not in skip]
    return sorted(files) + [out_dir / d for d in ("policy", "value", "merged") if (out_dir / d).is_dir()]


class JsonlLogCallback(TrainerCallback):
    """Writes the Trainer's log entries to a JSONL file as they come (main process only). On a resumed
    run it first rewrites the file from the restored log history."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(json.dumps(entry) + "\n" for entry in state.log_history))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(dict(logs, step=state.global_step)) + "\n")


def dump_parameter_fingerprint(stage: str, named_parameters, steps: int) -> None:
    """For distributed tests: when $RLHF_ADS_PARAM_FINGERPRINT_DIR is set, each rank writes
    <dir>/<stage>-rank<r>.json with a hash of its trainable parameters and the steps it ran."""
    folder = os.environ.get(FINGERPRINT_ENV)
    if not folder:
        return
    digest = hashlib.sha256()
    count = 0
    for name, param in named_parameters:
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
            count += 1
    Path(folder).mkdir(parents=True, exist_ok=True)
    record = {"rank": rank(), "steps": steps, "parameters": count, "sha256": digest.hexdigest()}
    (Path(folder) / f"{stage}-rank{rank()}.json").write_text(json.dumps(record))
