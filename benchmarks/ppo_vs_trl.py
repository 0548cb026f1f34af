"""PPO throughput and memory: our PPO stage against TRL 1.12's PPOTrainer, on the same work, with the floor.

    python benchmarks/ppo_vs_trl.py --steps 4 --dtypes fp32,bf16      (or `make bench`)

Both frameworks run in child processes of this one, one at a time, each measuring itself (phase timers,
peak RSS from getrusage): ours with this interpreter, the peer with `--peer-python` (a virtualenv with
trl==1.12.0; `make bench` builds benchmarks/.venv-trl112). The work: the bundled SmolLM2-135M base, the
bundled training briefs rendered as chat prompts (the same prompt ids per step for both), batch 8 in
minibatches of 4, 32 new tokens, one PPO epoch, a learned reward model and a value model on the same base.
The peer runs twice, with four full models and with its LoRA option; ratios are ours over the peer's
better figure. Ours runs with its defaults and, as a second row, with ppo.training.gradient_checkpointing (the
memory-lean setting). Writes results.json and RESULTS.md to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import floor  # noqa: E402
from bench_common import run_child, write_keeping_sections  # noqa: E402
import report  # noqa: E402

DEFAULT_PEER_PYTHON = HERE / ".venv-trl112" / "bin" / "python"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="PPO steps per run (the first is warm-up).")
    parser.add_argument("--warmup", type=int, default=1, help="Leading steps left out of the rates.")
    parser.add_argument("--rounds", type=int, default=1, help=(
        "Run every (framework, mode, dtype) this many times in alternation and keep each one's fastest run: on a "
        "shared machine the same run can be tens of percent slower a few minutes later."))
    parser.add_argument("--dtypes", default="fp32,bf16", help="Comma-separated precisions to compare.")
    parser.add_argument("--skip-peer", action="store_true", help="Run only ours (no TRL virtualenv needed).")
    parser.add_argument("--peer-modes", default="full,lora", help="Peer variants: full (four models), lora.")
    parser.add_argument("--ours-modes", default="defaults,compiled,checkpointed", help=(
        "Our variants: defaults (the stage as shipped, for a run this short: ppo.compile auto leaves it eager), "
        "compiled (ppo.compile: always, as shipped for runs of >= 40 steps), checkpointed "
        "(ppo.training.gradient_checkpointing), adapter-critic (ppo.critic: adapter), shared-critic (ppo.critic: "
        "shared), unmerged-sampling (ppo.sampling: adapters)."))
    parser.add_argument("--peer-python", default=str(DEFAULT_PEER_PYTHON), help="Python of the trl==1.12.0 venv.")
    parser.add_argument("--out", default=str(HERE), help="Folder for results.json and RESULTS.md.")
    parser.add_argument("--base", default="smollm2-135m-instruct", help="model.base for both (bundled name or folder).")
    parser.add_argument("--prompts", default="bundled:briefs:train", help="Prompt rows (a ppo.prompts value).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mini-batch-size", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-seconds", type=float, default=2.0, help="Time budget of each machine probe.")
    parser.add_argument("--matmul-n", type=int, default=2048, help="Size of the probe's square matmul.")
    parser.add_argument("--probe-mb", type=int, default=512, help="Size of the probe's bandwidth tensor, MiB.")
    parser.add_argument("--threads", type=int, default=None, help=(
        "Compute threads for every run and the probe (OMP_NUM_THREADS); default: torch's choice (all cores). "
        "On a machine shared with other jobs, 1 avoids stalls of threads waiting on descheduled siblings."))
    parser.add_argument("--render", metavar="RESULTS_JSON", nargs="+", help=(
        "Only rewrite RESULTS.md in --out from saved results.json files, merged (e.g. an fp32 and a bf16 run)."))
    parser.add_argument("--child-timeout", type=int, default=900, help="Seconds before a run is stopped.")
    args = parser.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    args.peer_modes = [] if args.skip_peer else [m.strip() for m in args.peer_modes.split(",") if m.strip()]
    args.ours_modes = [m.strip() for m in args.ours_modes.split(",") if m.strip()]
    if args.steps <= args.warmup:
        parser.error(f"--steps ({args.steps}) must exceed --warmup ({args.warmup}) to leave measured steps")
    if not args.skip_peer and not args.render and not Path(args.peer_python).is_file():
        parser.error(f"no peer interpreter at {args.peer_python}: run `make bench` (it builds the trl==1.12.0 "
                     "virtualenv) or pass --peer-python, or --skip-peer")
    return args


def build_spec(args) -> dict:
    """The work both frameworks do: base folder, pad token, and the prompt ids of every step (our trainer's
    batches, rendered and tokenized the way it does)."""
    from rlhf_ads.config import PPOStageConfig
    from rlhf_ads.data import load_prompts, render_row_prompt
    from rlhf_ads.modeling import load_tokenizer, resolve_base
    from rlhf_ads.ppo.trainer import batch_indices

    folder = resolve_base(args.base)
    tokenizer = load_tokenizer(folder)
    rows = load_prompts(args.prompts)  # as the PPO stage reads them (rlhf_ads.ppo.prompts.load_prompt_rows)
    max_prompt = PPOStageConfig().max_prompt_tokens
    step_prompts = []
    for step in range(args.steps):
        indices = batch_indices(len(rows), args.batch_size, step, args.seed)
        prompts = [render_row_prompt(rows[i], tokenizer) for i in indices]
        ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        step_prompts.append([row[-max_prompt:] for row in ids])
    return {"base": args.base, "base_folder": folder, "pad_token": tokenizer.pad_token, "prompts": args.prompts,
            "steps": args.steps, "warmup": args.warmup, "batch_size": args.batch_size,
            "mini_batch_size": args.mini_batch_size, "new_tokens": args.new_tokens, "temperature": 0.7,
            "learning_rate": 1e-5, "seed": args.seed, "lora": {"r": 16, "alpha": 32}, "step_prompts": step_prompts}


def run_ppo_child(name: str, command: list[str], workdir: Path, timeout: int, threads: int | None) -> dict | None:
    """One PPO child (bench_common.run_child), with its rate and peak memory printed."""
    started = time.perf_counter()
    result = run_child(name, command, workdir, timeout, threads)
    if result is not None:
        print(f"[bench] {name}: {result['samples_per_s']:.3f} samples/s, peak RSS "
              f"{result['peak_rss_bytes'] / 2 ** 30:.2f} GiB ({time.perf_counter() - started:.0f} s)", flush=True)
    return result


def run_all(args, spec: dict, workdir: Path) -> list[dict]:
    """Every (framework, mode, dtype) run, ours first for each dtype, `args.rounds` times in alternation; per
    run the fastest round, with every round's samples/s in `round_samples_per_s`."""
    spec_file = workdir / "spec.json"
    spec_file.write_text(json.dumps(spec))
    runs = {}
    for dtype in args.dtypes:
        for mode in args.ours_modes:
            runs[f"ours-{mode}-{dtype}"] = [sys.executable, str(HERE / "run_ours.py"), "--spec", str(spec_file),
                                            "--dtype", dtype, "--mode", mode]
        for mode in args.peer_modes:
            runs[f"trl-{mode}-{dtype}"] = [args.peer_python, str(HERE / "run_trl_ppo.py"), "--spec", str(spec_file),
                                           "--dtype", dtype, "--mode", mode]
    rounds = {name: [] for name in runs}
    for round_number in range(1, args.rounds + 1):
        for name, command in runs.items():
            suffix = f"-round{round_number}" if args.rounds > 1 else ""
            if (result := run_ppo_child(name + suffix, command, workdir, args.child_timeout, args.threads)) is not None:
                rounds[name].append(result)
    results = []
    for done in rounds.values():
        if done:
            results.append(dict(max(done, key=lambda r: r["samples_per_s"]),
                                round_samples_per_s=[r["samples_per_s"] for r in done]))
    return results


# What each framework computes per step, for the FLOP count (see floor.step_work). TRL takes the policy's
# rollout log-probs from the sampling logits; ours from a policy forward (the one its update runs), whose first
# micro-batch's training forward gives that micro-batch's (ppo/update.py: KeptPass).
_LORA = {"policy_logprob_pass": False, "policy_full": False, "value_full": False, "recompute": False}
_OURS = dict(_LORA, policy_logprob_pass=True, kept_first_pass=True)
_SHARED = dict(_OURS, shared_critic=True)  # the stage's default critic on this work (no LoRA reward model)
DESIGNS = {"ours/defaults": _SHARED, "ours/checkpointed": dict(_SHARED, recompute=True), "ours/adapter-critic": _OURS,
           "ours/shared-critic": _SHARED, "ours/unmerged-sampling": _SHARED, "ours/compiled": _SHARED,
           "trl-1.12/full": dict(_LORA, policy_full=True, value_full=True),
           "trl-1.12/lora": dict(_LORA, value_full=True)}


def design_key(result: dict) -> str:
    return f"{result['framework']}/{result['mode']}"


def summarize(args, spec: dict, results: list[dict], machine: dict) -> dict:
    """Comparisons per dtype, the default-vs-default ratio, and floor tables for every run."""
    from rlhf_ads.modeling import resolve_dtype

    sizes = floor.model_sizes(json.loads((Path(spec["base_folder"]) / "config.json").read_text()))
    for result in results:
        result["floor"] = floor.floor_table(result, sizes, machine, spec["batch_size"], DESIGNS[design_key(result)],
                                            micro_batch=spec["mini_batch_size"])  # no gradient accumulation
    return {"machine": machine, "command": report.command_line(), "rounds": args.rounds,
            "spec": {k: v for k, v in spec.items() if k != "step_prompts"}, "model_sizes": sizes, "results": results,
            "comparisons": report.all_comparisons(results),
            **report.defaults_and_compile(results, resolve_dtype("auto"), machine["cpu"].get("amx")),
            "ours_default_dtype": resolve_dtype("auto"),
            "finished_at": time.strftime("%Y-%m-%d %H:%M %Z")}


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        summary = report.merge([json.loads(Path(p).read_text()) for p in args.render])
        write_keeping_sections(out / "RESULTS.md", report.render(summary))
        (out / "results.json").write_text(json.dumps(summary, indent=2))
        return
    spec = build_spec(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print("[bench] probing the machine (matmul rates, memory bandwidth)", flush=True)
    machine = floor.probe_machine(seconds=args.probe_seconds, matmul_n=args.matmul_n, megabytes=args.probe_mb)
    with tempfile.TemporaryDirectory(prefix="rlhf-ads-bench-") as tmp:
        results = run_all(args, spec, Path(tmp))
    if not results:
        sys.exit("[bench] every run failed; see the log tails above")
    summary = summarize(args, spec, results, machine)
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    write_keeping_sections(out / "RESULTS.md", report.render(summary))
    print(report.headline(summary))
    print(f"[bench] wrote {out / 'RESULTS.md'} and {out / 'results.json'}")


if __name__ == "__main__":
    main()
