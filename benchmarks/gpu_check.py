"""One prepared GPU check: our real SFT, reward-model and PPO stages on a random-init 7B-shaped Llama (no
download), run as recipes/qlora_single_gpu.yaml runs them, with peak GPU memory, samples/s and seconds per phase,
in 4-bit NF4, with bf16 weights (what 4-bit costs in speed) and with PPO's static KV cache (compiled decoding).

    python benchmarks/gpu_check.py --out DIR                     # on a GPU machine (`make gpu-check`)
    python benchmarks/gpu_check.py --out DIR --shape tiny --set ppo.batch_size=2 ...   # the same code on a CPU

Each variant runs the recipe's stages cut to a few optimizer steps (`--steps`, `--ppo-steps`; the first step
of each is left out of the rates as warm-up) on the model built here: a Llama with the recipe's base's shape
(Qwen2.5-7B: 28 layers, hidden 3584, 4 key-value heads, 152k vocabulary; `--shape llama2-7b` for Llama-2-7B's)
with a byte-level BPE tokenizer trained on the bundled data. Every variant samples rollouts through the adapters
(`ppo.sampling: adapters`), so that 4-bit against bf16 compares the weights alone. DIR/gpu_check.json
and DIR/gpu_check.md are rewritten after every stage, so a run cut short keeps what it measured; a stage that
would start after `--budget-s` is skipped. benchmarks/README.md says how to run it on a GPU machine that lacks
some of our dependencies.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
from bench_common import PhaseTimer, peak_rss_bytes, steady_state  # noqa: E402
from run_ours import install_timers, time_steps  # noqa: E402
from trainers_vs_trl import StepMeter  # noqa: E402

RECIPE = REPO / "recipes" / "qlora_single_gpu.yaml"
# variant -> (4-bit base, ppo.kv_cache, stages); the static-cache PPO starts from the nf4 variant's SFT and reward
VARIANTS = {
    "nf4": (True, "dynamic", ("sft", "reward", "ppo")),
    "bf16": (False, "dynamic", ("sft", "reward", "ppo")),
    "nf4-static-cache": (True, "static", ("ppo",)),
}
SHAPES = ("qwen7b", "llama2-7b", "tiny")  # rlhf_ads.random_models.LLAMA_SHAPES
TOKENIZER_VOCAB = 32000  # the BPE trained on the bundled text stops earlier; the model's vocabulary is the shape's
GIB = 2 ** 30


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Folder for gpu_check.json and gpu_check.md.")
    parser.add_argument("--shape", choices=SHAPES, default="qwen7b", help="Model shape (tiny: CPU smoke runs).")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"Comma-separated, from {', '.join(VARIANTS)}.")
    parser.add_argument("--steps", type=int, default=3, help="Optimizer steps of SFT and of the reward model.")
    parser.add_argument("--ppo-steps", type=int, default=2, help="PPO steps (the first is warm-up).")
    parser.add_argument("--budget-s", type=float, default=420, help="Start no stage after this many seconds.")
    parser.add_argument("--workdir", help="Where the model and stage outputs go (default: a temporary folder).")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="A recipe override applied to every variant (repeatable).")
    parser.add_argument("-v", "--verbose", action="store_true", help="Show the dependencies' notices too.")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    return args


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bundled_texts() -> list[str]:
    """Every string of the bundled briefs and ads: the tokenizer's training corpus."""
    folder = REPO / "rlhf_ads" / "data" / "bundled"
    return [value for name in ("briefs.jsonl", "sft.jsonl") for line in (folder / name).read_text().splitlines()
            for value in json.loads(line).values() if isinstance(value, str)]


def build_base(shape: str, folder: Path) -> dict:
    """Save the random-init model of `shape` (bf16) with its tokenizer to `folder`; its size and build time."""
    from safetensors import safe_open

    from rlhf_ads.random_models import save_random_llama, train_tokenizer

    started = time.perf_counter()
    tokenizer = train_tokenizer(bundled_texts(), TOKENIZER_VOCAB)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    save_random_llama(folder, tokenizer, shape, dtype=torch.bfloat16, device=device)
    parameters = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(file, "pt") as tensors:
            parameters += sum(math.prod(tensors.get_slice(k).get_shape()) for k in tensors.keys())
    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {"shape": shape, "parameters": parameters, "tokenizer_tokens": len(tokenizer),
            "build_s": round(time.perf_counter() - started, 1)}


def variant_recipe(variant: str, model_dir: Path, workdir: Path, args):
    """recipes/qlora_single_gpu.yaml on the built model, each stage cut to the check's steps and rows."""
    from rlhf_ads import config

    four_bit, kv_cache, _ = VARIANTS[variant]
    full = config.load(RECIPE, args.set)
    overrides = [f"model.base={model_dir}", f"model.load_in_4bit={str(four_bit).lower()}", f"output_dir={workdir}",
                 f"run_name={'nf4' if four_bit else 'bf16'}", "sft.num_samples=0", "reward.max_score_rows=16",
                 f"ppo.steps={args.ppo_steps}", "ppo.eval_every=0", "ppo.log_samples=0", f"ppo.kv_cache={kv_cache}",
                 "ppo.sampling=adapters",
                 f"ppo.training.save_steps={10 ** 6}"]
    for stage in ("sft", "reward"):
        training = getattr(full, stage).training
        overrides += [f"{stage}.training.max_steps={args.steps}", f"{stage}.training.save_steps={10 ** 6}",
                      f"{stage}.training.max_train_rows={args.steps * training.batch_size * training.grad_accum}",
                      f"{stage}.training.max_eval_rows=16", f"{stage}.training.warmup_ratio=0"]
    return config.load(RECIPE, overrides + args.set)


def memory() -> dict:
    """Peak memory since the last reset: the GPU's allocator, or the process's RSS on a CPU."""
    if torch.cuda.is_available():
        return {"peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
                "peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB}
    return {"peak_rss_gib": peak_rss_bytes() / GIB}


class StageMeters:
    """Timers installed once for the whole check: PPO phases (benchmarks/run_ours.py's) and optimizer steps of
    the SFT and reward stages (a fresh StepMeter per stage)."""

    def __init__(self):
        import rlhf_ads.stages.reward as reward_stage
        import rlhf_ads.stages.sft as sft_stage

        self.ppo = PhaseTimer(synchronize)
        install_timers(self.ppo, [])
        time_steps(self.ppo)
        self.trainer = StepMeter(synchronize)
        for module in (sft_stage, reward_stage):
            self._meter_training(module)

    def _meter_training(self, module) -> None:
        original = module.train

        def metered(trainer, training, out_dir):
            self.trainer.attach(trainer)
            return original(trainer, training, out_dir)

        module.train = metered

    def measure(self, stage: str, recipe) -> dict:
        """Run one stage; its rates after the first step, phase seconds (PPO) and peak memory."""
        from rlhf_ads.pipeline import run_stage

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.trainer, first_ppo_step = StepMeter(synchronize), len(self.ppo.steps)
        self.ppo.current.clear()  # the SFT and reward stages' backward and optimizer calls are no PPO step's
        started = time.perf_counter()
        run_stage(stage, recipe)
        synchronize()
        result = {"stage": stage, "wall_s": time.perf_counter() - started, **memory()}
        if stage == "ppo":
            steps = self.ppo.steps[first_ppo_step:]
            result.update(steady_state(steps, recipe.ppo.batch_size, warmup=1), unit="samples",
                          response_tokens=[s["shapes"].get("response_tokens") for s in steps])
        else:
            training = getattr(recipe, stage).training
            rates = self.trainer.rates(1, training.batch_size * training.grad_accum)
            result.update(rates, samples_per_s=rates["rows_per_s"], unit="rows" if stage == "sft" else "pairs")
        return result


def environment() -> dict:
    import peft
    import transformers

    try:
        import bitsandbytes
        bnb = bitsandbytes.__version__
    except ImportError:
        bnb = None
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "bitsandbytes": bnb, "python": sys.version.split()[0]}


def render(summary: dict) -> str:
    """gpu_check.md: one table of the stages, one of PPO's phases, and what 4-bit costs."""
    env, base = summary["environment"], summary["base"]
    gpu = env["device"] != "cpu"
    memory_columns = "peak allocated (GiB) | peak reserved (GiB)" if gpu else "peak RSS (GiB) | "
    lines = [f"## GPU check: our stages on a random-init {base.get('shape')}-shaped Llama", "",
             f"Generated by `benchmarks/gpu_check.py` ({summary['finished_at']}); command: `{summary['command']}`.",
             f"{env['device']}; torch {env['torch']}, transformers {env['transformers']}, peft {env['peft']}, "
             f"bitsandbytes {env['bitsandbytes']}. Model: shape {base.get('shape')}, "
             f"{base.get('parameters', 0) / 1e6:,.0f}M parameters, built in {base.get('build_s', 0):.0f} s. "
             f"Settings: {summary['recipe']} (batch sizes and lengths as written there) cut to "
             f"{summary['steps']} SFT and reward steps and {summary['ppo_steps']} PPO steps; rates leave the first "
             "step out.", "",
             f"| variant | stage | measured steps | s/step | samples/s | {memory_columns} | stage wall (s) | note |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for run in summary["runs"]:
        memory_cells = (f"{run['peak_allocated_gib']:.2f} | {run['peak_reserved_gib']:.2f}" if gpu else
                        f"{run.get('peak_rss_gib', 0):.2f} | ")
        note = run.get("error") or run.get("skipped") or ""
        if "step_s" in run:
            lines.append(f"| {run['variant']} | {run['stage']} | {run['measured_steps']} | {run['step_s']:.2f} | "
                         f"{run['samples_per_s']:.2f} {run['unit']} | {memory_cells} | {run['wall_s']:.0f} | {note} |")
        else:
            lines.append(f"| {run['variant']} | {run['stage']} | | | | | | | {note} |")
    ppo = {r["variant"]: r for r in summary["runs"] if r["stage"] == "ppo" and "phase_s" in r}
    if ppo:
        phases = sorted({name for r in ppo.values() for name in r["phase_s"]})
        lines += ["", "PPO seconds per step by phase:", "", "| phase | " + " | ".join(ppo) + " |",
                  "|---|" + "---:|" * len(ppo)]
        lines += [f"| {name} | " + " | ".join(f"{r['phase_s'].get(name, 0):.2f}" for r in ppo.values()) + " |"
                  for name in phases]
    rates = {(r["variant"], r["stage"]): r["samples_per_s"] for r in summary["runs"] if "samples_per_s" in r}
    costs = [f"{stage} x{rates[('nf4', stage)] / rates[('bf16', stage)]:.2f}" for stage in ("sft", "reward", "ppo")
             if ("nf4", stage) in rates and ("bf16", stage) in rates]
    if costs:
        lines += ["", "4-bit NF4 speed as a multiple of bf16 weights' (samples/s): " + ", ".join(costs) + "."]
    return "\n".join(lines) + "\n"


def write(summary: dict, out: Path) -> None:
    summary["finished_at"] = time.strftime("%Y-%m-%d %H:%M %Z")
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
    (out / "gpu_check.md").write_text(render(summary))


def main(argv=None) -> None:
    from rlhf_ads.cli import quiet_dependencies

    args = parse_args(argv)
    quiet_dependencies(args.verbose)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rlhf-ads-gpu-check-") as scratch:
        workdir = Path(args.workdir or scratch)
        given = sys.argv[1:] if argv is None else argv
        summary = {"command": "python " + " ".join([os.path.relpath(__file__, REPO), *given]),
                   "environment": environment(), "recipe": str(RECIPE.relative_to(REPO)), "steps": args.steps,
                   "ppo_steps": args.ppo_steps, "base": {}, "runs": []}
        print(f"[gpu-check] building the {args.shape} model", flush=True)
        summary["base"] = build_base(args.shape, workdir / f"base-{args.shape}")
        write(summary, out)
        meters = StageMeters()
        for variant in args.variants:
            recipe = variant_recipe(variant, workdir / f"base-{args.shape}", workdir / "runs", args)
            failed = None
            for stage in VARIANTS[variant][2]:
                run = {"variant": variant, "stage": stage}
                if failed or time.perf_counter() - started > args.budget_s:
                    run["skipped"] = f"after {failed}" if failed else f"time budget ({args.budget_s:.0f} s) spent"
                else:
                    print(f"[gpu-check] {variant}: {stage}", flush=True)
                    try:
                        run.update(meters.measure(stage, recipe))
                    except Exception as exc:  # an out-of-memory stage is a result too; the next variant runs
                        failed = f"{stage} failed"
                        run["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                        print(f"[gpu-check] {variant} {stage}: {run['error']}", flush=True)
                summary["runs"].append(run)
                write(summary, out)
    print(f"[gpu-check] wrote {out / 'gpu_check.md'} and {out / 'gpu_check.json'} in "
          f"{time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
