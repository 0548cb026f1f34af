"""`rlhf-ads` command line: one subcommand per working stage, recipes plus key=value overrides."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
import warnings

from rlhf_ads import config, pipeline, processes
from rlhf_ads.annotate import commands as annotate
from rlhf_ads.config_schema import field_help, to_dict
from rlhf_ads.data.validation import KINDS
from rlhf_ads.errors import ConfigError, RlhfAdsError


SECTIONS = ("generate", "sft", "reward", "ppo", "dpo", "grpo", "rloo", "evaluate")  # a stage's own section; the rest is shared


def _keys_epilog(section_cls, prefix: str) -> str:
    """Every key the command reads: its own section's and, for a stage, the shared ones (run, model, rewards,
    tracking), with the defaults `rlhf-ads config` resolves when no recipe sets them."""
    recipe = config.Recipe()
    rows = field_help(section_cls, prefix, getattr(recipe, prefix.rstrip(".")) if prefix else recipe)
    if prefix:
        rows += [row for row in field_help(config.Recipe, "", recipe) if row[0].split(".")[0] not in SECTIONS]
    lines = [f"  {key} (default {default!r}): {help_}" for key, help_, default in rows]
    return ("recipe keys you can override with key=value (defaults without a recipe; `rlhf-ads config RECIPE` "
            "prints a recipe's values):\n" + "\n".join(lines) + "\n  base_recipe (in a recipe file only): a parent "
            "recipe, relative to the file's folder; the file sets only what differs from it")


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
    _recipe_parser(sub, "generate", "write ad copy for briefs or plain prompts with a model", config.GenerateConfig, "generate.")
    for stage, help_, cls in (("sft", "stage 1: supervised fine-tuning on briefs -> ad copy", config.SFTStageConfig),
                              ("reward", "stage 2: train a pairwise reward model or a click-through model",
                               config.RewardStageConfig),
                              ("ppo", "stage 3: PPO against the recipe's reward mix, KL-leashed to the SFT policy",
                               config.PPOStageConfig),
                              ("dpo", "beyond PPO: DPO on the designer preferences from the SFT adapter (TRL)",
                               config.DPOStageConfig),
                              ("grpo", "beyond PPO: GRPO against the recipe's reward mix from the SFT adapter (TRL)",
                               config.GRPOStageConfig),
                              ("rloo", "beyond PPO: RLOO against the recipe's reward mix from the SFT adapter (TRL)",
                               config.RLOOStageConfig)):
        stage_parser = _recipe_parser(sub, stage, help_, cls, f"{stage}.")
        stage_parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    pipeline_parser = _recipe_parser(sub, "pipeline", "SFT -> reward model -> PPO (-> DPO, GRPO, RLOO when the recipe's "
                                     "`pipeline:` names them) -> evaluate, each stage's output feeding the next; "
                                     "writes <run>/report/report.html", config.Recipe, "")
    pipeline_parser.add_argument("--resume", action="store_true",
                          help="skip finished stages; continue an interrupted one from its newest checkpoint")
    pipeline_parser.add_argument("--stages", help=(
        "comma-separated stages to run, e.g. ppo,evaluate (default: the recipe's `pipeline:`, which is "
        "sft,reward,ppo,evaluate unless it says otherwise)"))
    _recipe_parser(sub, "evaluate", "compare checkpoints (base, sft, ppo, dpo, grpo, rloo, best_of_n, adapter folders) "
                   "on held-out briefs",
                   config.EvaluateConfig, "evaluate.")
    _recipe_parser(sub, "config", "print the resolved recipe (after defaults and overrides) as JSON",
                   config.Recipe, "")
    data = sub.add_parser("data", help="work with data files").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="validate a data file; list every problem row; exit 1 if any")
    check.add_argument("file", help=".jsonl, .csv, .parquet file or a save_to_disk folder")
    check.add_argument("--kind", choices=sorted(KINDS), help="data kind (default: guessed from the columns)")
    check.add_argument("--split", help="for a DatasetDict folder: the split to check")
    check.add_argument("--columns", nargs="*", default=[], metavar="OURS=YOURS", help="column mapping, e.g. chosen=better_ad")
    check.add_argument("--max-text-chars", type=int, default=2000, help="longest text field accepted")
    lint = sub.add_parser("lint", help="check ad texts against platform limits and editorial rules; exit 1 on any")
    lint.add_argument("file", help="text file (one ad per line) or .jsonl/.csv with an 'ad', 'text' or 'completion' column")
    lint.add_argument("--platform", help="platform spec (google_rsa, microsoft_rsa, meta); rows may carry their own")
    lint.add_argument("--field", help="platform field (headline, description, ...) for the length limit")
    lint.add_argument("--prohibited", nargs="*", default=[], metavar="TERM", help="the advertiser's prohibited terms")
    lint.add_argument("--supported-claims", nargs="*", default=[], metavar="CLAIM",
                      help="superlatives the advertiser can verify, e.g. '#1'")
    annotate.add_parser(sub)
    return parser


def _lint(args) -> int:
    from rlhf_ads.lint import lint_file

    violations, checked, unchecked = lint_file(args.file, platform=args.platform, field=args.field,
                                               prohibited_terms=args.prohibited, supported_claims=args.supported_claims)
    for where, violation in violations:
        print(f"{where}: {violation}")
    bad = len({where for where, _ in violations})
    print(f"{args.file}: {_count(checked, 'ad')} checked, {bad} with violations ({_count(len(violations), 'violation')})")
    if unchecked:
        print(f"{args.file}: length limits not checked for {_count(unchecked, 'ad')}: no platform and field; pass "
              "--platform and --field, or give the rows platform and field columns")
    return 1 if violations else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _data_check(args) -> int:
    from rlhf_ads.data.formats import read_records
    from rlhf_ads.data.loading import map_columns
    from rlhf_ads.data.validation import find_problems

    records = read_records(args.file, args.split)
    columns = dict(item.split("=", 1) for item in args.columns)
    kind = args.kind or _kind_from_columns(args.file, next((r.row for r in records if r.row), {}), columns)
    if columns:
        map_columns(records, columns, kind)
    good, problems = find_problems(records, kind, args.max_text_chars)
    for problem in problems:
        print(problem)
    bad_rows = len({p.where for p in problems})
    print(f"{args.file}: {len(records)} rows checked as {kind}: {len(good)} ok, {bad_rows} with problems")
    return 1 if problems else 0


def _kind_from_columns(file: str, row: dict, columns: dict[str, str]) -> str:
    """The kind `data check` infers from a row's column names read through the --columns mapping (ours=yours);
    an error when no kind's columns are there at all."""
    from rlhf_ads.data.validation import guess_kind, kind_coverage

    theirs = {yours: ours for ours, yours in columns.items()}
    named = {theirs.get(column, column) for column in row}
    kind = guess_kind(dict.fromkeys(named))
    if kind_coverage(dict.fromkeys(named), kind) == 0:
        raise ConfigError(f"{file}: no column is one of ours ({', '.join(sorted(named)) or 'no columns'}); pass "
                          f"--kind ({', '.join(KINDS)}) and --columns OURS=YOURS for each column to map")
    return kind


def _split_recipe(args) -> tuple[str | None, list[str]]:
    """Allow `rlhf-ads generate key=value` with no recipe file."""
    if args.recipe is not None and "=" in args.recipe and not os.path.exists(args.recipe):
        return None, [args.recipe, *args.overrides]
    return args.recipe, list(args.overrides)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line with options and key=value overrides in any order: argparse takes positionals
    in one run, so overrides after an option (`pipeline R --stages ppo key=value`) come back as extras and join
    the overrides here; anything else unrecognised is an error as usual."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    late = [e for e in extras if "=" in e and not e.startswith("-")]
    unknown = [e for e in extras if e not in late]
    if unknown or (late and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or late)}")
    if late:
        if args.recipe is None:  # the first override was read as the recipe slot's default
            args.recipe, late = late[0], late[1:]
        args.overrides = [*args.overrides, *late]
    return args


# Messages the dependencies print on every run that are not the user's problem: shown with -v only.
QUIET_LOGGERS = ("bitsandbytes", "transformers.modeling_utils", "transformers.utils.loading_report")
QUIET_WARNINGS = (FutureWarning, DeprecationWarning)
QUIET_MESSAGES = ("'pin_memory' argument is set as true but no accelerator is found",)


def quiet_dependencies(verbose: bool) -> None:
    """Quiet by default: bitsandbytes' optional-kernel notice, transformers' weight-loading report (a fresh score
    head is "MISSING" by design) and the dependencies' deprecation and future warnings go away unless -v; their
    errors, and every warning of ours, stay."""
    if verbose:
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", category=category)
    for message in QUIET_MESSAGES:
        warnings.filterwarnings("ignore", message=message)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    quiet_dependencies(args.verbose)
    recipe = None
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "data":
            return _data_check(args)
        if args.command == "lint":
            return _lint(args)
        if args.command == "annotate":  # `annotate candidates` reads a recipe; the others a database
            return annotate.run(args, config.load(*_split_recipe(args)) if hasattr(args, "recipe") else None)
        recipe = config.load(*_split_recipe(args))
        if args.command == "config":
            print(json.dumps(to_dict(recipe), indent=2))
        elif args.command == "pipeline":
            pipeline.run(recipe, pipeline.parse_stages(args.stages, recipe.pipeline), resume=args.resume)
        else:
            if getattr(args, "resume", False):
                pipeline.set_resume(recipe, args.command)
            pipeline.run_stage(args.command, recipe)
    except KeyboardInterrupt as interrupt:  # Ctrl-C: one line, exit status 130 like a shell's
        stage = getattr(interrupt, "stage", args.command)
        print(pipeline.interrupted_message(recipe, stage, argv), file=sys.stderr)
        return 130
    except RlhfAdsError as exc:
        if args.verbose:  # -v: the whole chain, the cause's own frames included
            traceback.print_exc()
        print(f"rlhf-ads: error: {exc}", file=sys.stderr)
        return 2
    finally:
        processes.leave_group()  # `accelerate launch $(which rlhf-ads) ...` runs this in every rank
    return 0


if __name__ == "__main__":
    sys.exit(main())
