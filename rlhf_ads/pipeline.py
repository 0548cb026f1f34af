"""`rlhf-ads pipeline`: SFT -> reward model -> PPO (and DPO, GRPO, RLOO when the recipe's `pipeline:` names them)
-> evaluation, each stage exactly as if run alone.

Stages meet through their output folders under <output_dir>/<run_name>/ (PPO, DPO, GRPO and RLOO start from
sft/, the reward mix names '{run_dir}/reward'), so the pipeline only runs them in order and records their wall
times and peak memory in <run>/pipeline.json. With resume, a stage whose metrics.json exists is skipped and an
interrupted one continues from its newest checkpoint.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import shlex
import time
import typing
from pathlib import Path

from rlhf_ads import checkpoint
from rlhf_ads.config import PipelineStage, Recipe
from rlhf_ads.errors import ConfigError
from rlhf_ads.peak_memory import peak_rss_mb, reset_peak_memory
from rlhf_ads.storage import atomic_write_text

log = logging.getLogger(__name__)
STAGES: tuple[str, ...] = typing.get_args(PipelineStage)  # every stage, in the order a pipeline runs them
MODULES = {"ppo": "rlhf_ads.ppo.trainer", "evaluate": "rlhf_ads.evaluation.evaluate"}


def run_stage(name: str, recipe: Recipe) -> dict:
    """Run one stage by name (imports only that stage's dependencies)."""
    return importlib.import_module(MODULES.get(name, f"rlhf_ads.stages.{name}")).run(recipe)


def stage_output(recipe: Recipe, stage: str) -> Path:
    """The folder a stage writes its metrics.json to."""
    from rlhf_ads.evaluation.evaluate import OUTPUT_FOLDER

    folder = {"evaluate": OUTPUT_FOLDER, "reward": recipe.reward.output}.get(stage, stage)
    return recipe.stage_dir(folder)


def set_resume(recipe: Recipe, stage: str) -> None:
    """Ask a training stage (each has a `training:` section) to continue from its newest checkpoint."""
    training = getattr(getattr(recipe, stage, None), "training", None)
    if training is not None:
        training.resume = True


def interrupted_message(recipe: Recipe | None, stage: str, argv: list[str]) -> str:
    """One line for Ctrl-C: the stage that stopped, its newest complete checkpoint, and the command to resume."""
    command = "rlhf-ads " + " ".join(shlex.quote(a) for a in argv)
    resumable = recipe is not None and stage in STAGES and (stage != "evaluate" or "pipeline" in argv)
    if not resumable:
        return f"rlhf-ads: interrupted during {stage}; nothing to resume, run again: {command}"
    newest = checkpoint.newest(stage_output(recipe, stage) / "checkpoints") if stage != "evaluate" else None
    saved = (f"newest complete checkpoint {newest}" if newest else
             "the finished stages are kept" if stage == "evaluate" else "no checkpoint yet (the stage starts over)")
    resume = command if "--resume" in argv else f"{command} --resume"  # a pipeline's --resume skips finished stages
    return f"rlhf-ads: interrupted during {stage}; {saved}; resume with: {resume}"


def parse_stages(text: str | None, default: list[str] = STAGES) -> tuple[str, ...]:
    """'sft,ppo' -> ('sft', 'ppo') in pipeline order; None -> `default` (a recipe's `pipeline:`) in that order."""
    asked = [s.strip() for s in text.split(",") if s.strip()] if text else list(default)
    unknown = [s for s in asked if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown pipeline stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in asked)


def run(recipe: Recipe, stages: tuple[str, ...] | None = None, resume: bool = False) -> dict[str, float]:
    """Run the stages in order (default: the recipe's `pipeline:`); returns {stage: seconds} for the stages run
    now. pipeline.json also keeps each stage's peak resident memory (rlhf_ads.peak_memory)."""
    stages = parse_stages(None, recipe.pipeline) if stages is None else stages
    run_dir = Path(recipe.output_dir) / recipe.run_name
    record_path = run_dir / "pipeline.json"
    record = json.loads(record_path.read_text()) if resume and record_path.is_file() else {"seconds": {}}
    ran: dict[str, float] = {}
    for stage in stages:
        if resume and (stage_output(recipe, stage) / "metrics.json").is_file():
            log.info("pipeline: %s already finished (%s); skipped", stage, stage_output(recipe, stage))
            continue
        if resume:
            set_resume(recipe, stage)
        log.info("pipeline: %s starts", stage)
        reset_peak_memory()
        started = time.perf_counter()
        try:
            run_stage(stage, recipe)
        except KeyboardInterrupt as interrupt:
            interrupt.stage = stage  # for the one-line message the CLI prints
            raise
        gc.collect()
        ran[stage] = round(time.perf_counter() - started, 1)
        record["seconds"][stage] = ran[stage]
        record.setdefault("peak_rss_mb", {})[stage] = round(peak_rss_mb(), 1)
        atomic_write_text(record_path, json.dumps(record, indent=2))
        log.info("pipeline: %s took %.0f s", stage, ran[stage])
    total = sum(record["seconds"].values())
    log.info("pipeline: done in %.0f s (%s); report: %s", total,
             ", ".join(f"{s} {t:.0f} s" for s, t in record["seconds"].items()), stage_output(recipe, "evaluate"))
    return ran
