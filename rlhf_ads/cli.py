"""`rlhf-ads` command line: one subcommand per working stage, recipes plus key=value overrides."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from rlhf_ads import config
from rlhf_ads.config_schema import field_help, to_dict
from rlhf_ads.errors import RlhfAdsError


def _keys_epilog(section_cls, prefix: str) -> str:
    rows = [f"  {key} (default {default!r}): {help_}" for key, help_, default in field_help(section_cls, prefix)]
    return "recipe keys you can override with key=value:\n" + "\n".join(rows)


def _recipe_parser(sub, name: str, help_: str, section_cls, prefix: str):
    parser = sub.add_parser(name, help=help_, description=help_, epilog=_keys_epilog(section_cls, prefix),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", help="recipe YAML (default: built-in defaults)")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. model.dtype=fp32")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-ads", description="Train language models to write ad creatives with RLHF.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)
    _recipe_parser(sub, "generate", "write ad copy for briefs with a model", config.GenerateConfig, "generate.")
    _recipe_parser(sub, "config", "print the resolved recipe (after defaults and overrides) as JSON",
                   config.Recipe, "")
    return parser


def _split_recipe(args) -> tuple[str | None, list[str]]:
    """Allow `rlhf-ads generate key=value` with no recipe file."""
    if args.recipe is not None and "=" in args.recipe and not os.path.exists(args.recipe):
        return None, [args.recipe, *args.overrides]
    return args.recipe, list(args.overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        recipe = config.load(*_split_recipe(args))
        if args.command == "config":
            print(json.dumps(to_dict(recipe), indent=2))
        elif args.command == "generate":
            from rlhf_ads.stages import generate

            generate.run(recipe)
    except RlhfAdsError as exc:
        print(f"rlhf-ads: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
