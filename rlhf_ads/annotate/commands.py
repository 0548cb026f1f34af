"""`rlhf-ads annotate ...`: the command lines of the designer feedback loop (parsers and what each runs)."""

from __future__ import annotations

import argparse
import ipaddress
import json

from rlhf_ads.errors import RlhfAdsError

LOOP = """the loop: candidates -> serve (designers label) -> export -> rlhf-ads reward -> rlhf-ads ppo:
  rlhf-ads annotate candidates RECIPE --models sft,ppo --per-brief 2 --out candidates.jsonl
  rlhf-ads annotate add-designer alice --db annotations.sqlite
  rlhf-ads annotate serve --db annotations.sqlite --candidates candidates.jsonl --overlap 2
  rlhf-ads annotate export --db annotations.sqlite --out prefs.jsonl
  rlhf-ads reward RECIPE reward.train=prefs.jsonl reward.train.briefs=prefs.briefs.jsonl
on the bundled data, the simulated designers can stand in for people (a store of their own):
  rlhf-ads annotate simulate --db simulated.sqlite --candidates candidates.jsonl"""


def add_parser(sub) -> None:
    """The `annotate` command and its subcommands, on the CLI's subparsers."""
    annotate = sub.add_parser("annotate", help="designers compare ads in a web app; their labels train the reward model",
                              description="The designer feedback loop.", epilog=LOOP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = annotate.add_subparsers(dest="annotate_command", required=True)
    candidates = commands.add_parser("candidates", help="sample candidate ads from checkpoints into a JSONL file")
    candidates.add_argument("recipe", nargs="?", help="recipe YAML (its model.base and run folders)")
    candidates.add_argument("overrides", nargs="*", help="section.key=value overrides")
    candidates.add_argument("--models", default="sft,ppo",
                            help="comma-separated checkpoints: base, sft, ppo or adapter folders (default sft,ppo)")
    candidates.add_argument("--briefs", help="briefs or prompts to write for (default: the recipe's ppo.prompts, the "
                                             "training briefs; not the held-out ones evaluate reports on)")
    candidates.add_argument("--num-briefs", type=int, default=20, help="the first N briefs (default 20)")
    candidates.add_argument("--per-brief", type=int, default=2, help="ads per brief and checkpoint (default 2)")
    candidates.add_argument("--temperature", type=float, help="sampling temperature (default: ppo.temperature)")
    candidates.add_argument("--max-new-tokens", type=int, help="token budget per ad (default: evaluate.max_new_tokens)")
    candidates.add_argument("--out", required=True, help="the candidates JSONL to write")
    for name, help_ in (("add-designer", "add a designer (or --rotate their token); prints the token once"),
                        ("revoke-designer", "revoke a designer's token (their labels stay)")):
        designer = commands.add_parser(name, help=help_)
        designer.add_argument("name")
        _db(designer)
        if name == "add-designer":
            designer.add_argument("--rotate", action="store_true", help="give an existing designer a new token")
    serve = commands.add_parser("serve", help="the labelling web app (binds to 127.0.0.1 unless --host says otherwise)")
    _db(serve)
    serve.add_argument("--candidates", action="append", default=[], metavar="FILE",
                       help="candidates JSONL to add (repeatable; needed on the first run)")
    serve.add_argument("--briefs", help="briefs source for candidate rows that have only a brief_id")
    serve.add_argument("--overlap", type=int, default=1, help="designers who label each pair (default 1; 2 or more "
                                                              "measures agreement)")
    serve.add_argument("--goal", type=int, help="labels per designer (default: an equal share of pairs x overlap)")
    serve.add_argument("--reward-model", metavar="FOLDER",
                       help="a reward stage's output: pairs it is least sure about are offered first")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    simulate = commands.add_parser("simulate", help="the bundled data's simulated designers label every pair (no "
                                                    "people; bundled briefs only)")
    _db(simulate)
    simulate.add_argument("--candidates", action="append", default=[], metavar="FILE",
                          help="candidates JSONL to add first (repeatable)")
    simulate.add_argument("--briefs", help="briefs source for candidate rows that have only a brief_id")
    simulate.add_argument("--overlap", type=int, default=1, help="simulated designers who label each pair (default 1)")
    simulate.add_argument("--seed", type=int, default=0, help="seed of the designers' draws (default 0)")
    export = commands.add_parser("export", help="write the labels as the preference file the reward stage reads")
    _db(export)
    export.add_argument("--out", required=True, help="preferences JSONL (brief_id/prompt, chosen, rejected, "
                                                     "designer_id, margin)")
    export.add_argument("--briefs-out", help="briefs JSONL the rows' brief_id point into (default OUT.briefs.jsonl)")
    export.add_argument("--ties", metavar="FILE", help="also write ties and both-unusable labels to FILE")
    export.add_argument("--mix", action="append", default=[], metavar="SOURCE",
                        help="add the rows of a preference source, e.g. bundled:preferences:train (repeatable)")
    stats = commands.add_parser("stats", help="labels per designer, agreement, Krippendorff's alpha")
    _db(stats)
    stats.add_argument("--reward-model", metavar="FOLDER", help="also each designer's agreement with this reward model")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")


def _db(parser) -> None:
    parser.add_argument("--db", required=True, help="the annotation database (SQLite; created on first use)")


def run(args, recipe=None) -> int:
    """Run one `annotate` subcommand; `recipe`: the loaded recipe, for `candidates`."""
    from rlhf_ads.annotate.store import Store

    if args.annotate_command == "candidates":
        return _candidates(args, recipe)
    store = Store(args.db)
    if args.annotate_command == "add-designer":
        token = store.add_designer(args.name, rotate=args.rotate)
        print(f"designer {args.name}: token (shown once; only its hash is stored):\n{token}")
    elif args.annotate_command == "revoke-designer":
        store.revoke_designer(args.name)
        print(f"designer {args.name}: token revoked; their labels stay")
    elif args.annotate_command == "serve":
        return _serve(args, store)
    elif args.annotate_command == "simulate":
        return _simulate(args, store)
    elif args.annotate_command == "export":
        return _export(args, store)
    else:
        return _stats(args, store)
    return 0


def _candidates(args, recipe) -> int:
    from rlhf_ads.annotate.candidates import candidate_row, generate_candidates
    from rlhf_ads.config import DataSource
    from rlhf_ads.storage import atomic_write_text

    models = [name.strip() for name in args.models.split(",") if name.strip()]
    if args.per_brief < 1 or args.num_briefs < 1 or not models:
        raise RlhfAdsError("--per-brief and --num-briefs must be at least 1, and --models name a checkpoint")
    source = DataSource(args.briefs) if args.briefs else recipe.ppo.prompts
    made = generate_candidates(recipe, models, source, args.per_brief, args.num_briefs,
                               recipe.ppo.temperature if args.temperature is None else args.temperature,
                               args.max_new_tokens or recipe.evaluate.max_new_tokens)
    atomic_write_text(args.out, "".join(json.dumps(candidate_row(c), ensure_ascii=False) + "\n" for c in made))
    briefs = len({c.brief_key for c in made})
    print(f"wrote {len(made)} candidates for {briefs} briefs from {', '.join(models)} to {args.out}; next: "
          f"rlhf-ads annotate serve --db annotations.sqlite --candidates {args.out}")
    return 0


def _serve(args, store) -> int:
    if args.overlap < 1 or (args.goal is not None and args.goal < 1):
        raise RlhfAdsError("--overlap and --goal must be at least 1")
    _import(args, store)
    total = store.pair_count()
    if total == 0:
        raise RlhfAdsError(f"{args.db}: no pairs to compare; pass --candidates FILE with two different ads per brief")
    _score(store, args.reward_model)
    try:
        import uvicorn

        from rlhf_ads.annotate.app import create_app
    except ImportError as exc:
        raise RlhfAdsError(f"annotate serve needs FastAPI and uvicorn ({exc}): pip install 'rlhf-ads[annotate]'") from None
    designers = store.designers()
    if not designers:
        print(f"annotate: no designers yet: rlhf-ads annotate add-designer NAME --db {args.db}")
    if not _loopback(args.host):
        print(f"annotate: WARNING: serving on {args.host} over plain HTTP: tokens and labels cross the network "
              "unencrypted; put the app behind an HTTPS proxy")
    print(f"annotate: {total} pairs, overlap {args.overlap}, {len(designers)} designers; serving "
          f"http://{args.host}:{args.port}/ (Ctrl-C stops; each label is on disk once acknowledged)", flush=True)
    uvicorn.run(create_app(store, overlap=args.overlap, goal=args.goal), host=args.host, port=args.port,
                log_level="warning")
    return 0


def _score(store, folder: str | None) -> None:
    """Score the candidates with a reward model for the queue's order, or clear old scores (random order)."""
    if folder is None:
        store.set_scores(None)
        return
    from rlhf_ads.annotate.scoring import load_scorer, score_candidates

    scores = score_candidates(store.candidates().values(), load_scorer(folder))
    store.set_scores(scores)
    print(f"annotate: {folder} scored {len(scores)} candidates; the pairs it is least sure about come first")


def _import(args, store) -> None:
    """Add the candidates files of `--candidates` to the store, saying what each added."""
    from rlhf_ads.annotate.candidates import read_candidates

    for path in args.candidates:
        new, pairs, same = store.import_candidates(read_candidates(path, briefs=args.briefs))
        skipped = f" ({same} skipped: the same ad twice)" if same else ""
        print(f"annotate: {path}: {new} new candidates, {pairs} new pairs{skipped}")


def _simulate(args, store) -> int:
    from rlhf_ads.annotate.simulate import simulate_labels

    _import(args, store)
    if store.pair_count() == 0:
        raise RlhfAdsError(f"{args.db}: no pairs to label; pass --candidates FILE with two different ads per brief")
    given = simulate_labels(store, args.overlap, args.seed)
    print(f"annotate: {sum(given.values())} simulated labels ("
          + ", ".join(f"{name} {n}" for name, n in given.items()) + f"); next: rlhf-ads annotate export --db {args.db} "
          "--out prefs.jsonl --mix bundled:preferences:train")
    return 0


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _export(args, store) -> int:
    from rlhf_ads.annotate.export import export

    done = export(store, args.out, args.briefs_out, args.ties, tuple(args.mix))
    mixed = f" ({done['mixed']} of them from {', '.join(args.mix)})" if args.mix else ""
    left_out = f"{done['ties']} ties and {done['unusable']} both-unusable labels"
    where = f"written to {args.ties}" if args.ties else "left out (--ties FILE writes them)"
    print(f"wrote {done['rows']} preference rows{mixed} to {args.out}; {left_out} {where}")
    briefs = f" reward.train.briefs={done['briefs_out']}" if done["briefs_out"] else ""
    print(f"train on them: rlhf-ads reward RECIPE reward.train={args.out}{briefs} reward.margin_column=margin")
    return 0


def _stats(args, store) -> int:
    from rlhf_ads.annotate.stats import format_report, report

    scores = None
    if args.reward_model:
        from rlhf_ads.annotate.scoring import load_scorer, score_candidates

        scores = score_candidates(store.candidates().values(), load_scorer(args.reward_model))
    stats = report(store.labels(), scores)
    print(json.dumps(stats, indent=2) if args.json else format_report(stats))
    return 0
