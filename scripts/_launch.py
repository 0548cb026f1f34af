"""Shared entry for `accelerate launch scripts/<stage>.py --config RECIPE [key=value ...] [--resume]`."""

from __future__ import annotations

import argparse
import sys

from rlhf_ads import config, pipeline, processes
from rlhf_ads.errors import RlhfAdsError


def parse_args(stage: str, argv: list[str] | None = None) -> argparse.Namespace:
    """`--config RECIPE [key=value ...] [--resume]`, as `accelerate launch scripts/<stage>.py ...` passes them."""
    parser = argparse.ArgumentParser(description=f"rlhf-ads stage '{stage}' (works under accelerate launch)")
    parser.add_argument("--config", help="recipe YAML")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser.parse_args(argv)


def launch(stage: str) -> None:
    args = parse_args(stage)
    try:
        recipe = config.load(args.config, args.overrides)
        if stage == "pipeline":
            pipeline.run(recipe, resume=args.resume)
            return
        if args.resume:
            pipeline.set_resume(recipe, stage)
        pipeline.run_stage(stage, recipe)
    except RlhfAdsError as exc:
        print(f"rlhf-ads: error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        processes.leave_group()
