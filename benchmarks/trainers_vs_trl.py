"""SFT and reward-model training throughput: our stages against TRL's trainers used plainly, same settings.

    python benchmarks/trainers_vs_trl.py --steps 6 --cases sft,rm-encoder,rm-causal

Each case runs three child processes of this one, one at a time: ours (`rlhf_ads.stages.sft.run` /
`rlhf_ads.stages.reward.run` on the quickstart recipe), and TRL's `SFTTrainer` / `RewardTrainer` as a user
would call them on the same rows (text prompt/completion or chosen/rejected columns, `peft_config` for
LoRA), once with TRL's defaults (which turn on gradient checkpointing) and once with gradient checkpointing
off. Same base, rows, row order (the Trainer's seeded sampler), batch size, learning rate, max length,
LoRA settings and precision. Each child times its optimizer steps from outside (a TrainerCallback) and
counts the tokens its batches hold (attention mask), leaving out the first `--warmup` steps.

Writes the "Training stages" section of RESULTS.md (the PPO report keeps it) and trainers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from bench_common import peak_rss_bytes, replace_section, run_child, write_result  # noqa: E402

RECIPE = REPO / "recipes" / "quickstart.yaml"
SIDES = ("ours", "trl", "trl-no-gc")
# case -> (stage, recipe section, extra recipe overrides, unit of a row)
CASES = {
    "sft": ("sft", "sft", [], "rows"),
    "rm-encoder": ("reward", "reward", ["reward.backbone=encoder"], "pairs"),
    "rm-causal": ("reward", "reward", ["reward.backbone=causal"], "pairs"),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="sft,rm-encoder,rm-causal", help="Comma-separated: " + ", ".join(CASES))
    parser.add_argument("--steps", type=int, default=6, help="Optimizer steps per run, warm-up included.")
    parser.add_argument("--warmup", type=int, default=1, help="First steps left out of the rates.")
    parser.add_argument("--rounds", type=int, default=2, help=(
        "Runs of each side, in alternation (ours, trl, trl-no-gc, ours, ...); each side's fastest run counts. "
        "This shared machine's speed drifts by tens of percent from one minute to the next."))
    parser.add_argument("--threads", type=int, default=None, help="Compute threads per child (default: torch's).")
    parser.add_argument("--out", default=str(HERE), help="Folder holding RESULTS.md and trainers.json.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=(
        "Recipe override for every run, e.g. --set model.base=/path/to/model (repeatable)."))
    parser.add_argument("--child-timeout", type=int, default=1800)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- children ---------------------------------------------------------------------------------------------

class StepMeter:
    """Wall time of each optimizer step (TrainerCallback events) and the tokens its batches held; `synchronize`
    (e.g. torch.cuda.synchronize) runs at each step's end, so that asynchronous GPU work counts in its step."""

    def __init__(self, synchronize=None):
        self.synchronize = synchronize or (lambda: None)
        self.seconds: list[float] = []
        self.tokens: list[int] = []
        self._start = 0.0
        self._tokens = 0

    def attach(self, trainer) -> None:
        from transformers import TrainerCallback

        meter, training_step = self, trainer.training_step

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                meter._start, meter._tokens = time.perf_counter(), 0

            def on_step_end(self, args, state, control, **kwargs):
                meter.synchronize()
                meter.seconds.append(time.perf_counter() - meter._start)
                meter.tokens.append(meter._tokens)

        def counted(model, inputs, *args, **kwargs):
            meter._tokens += int(inputs["attention_mask"].sum())
            return training_step(model, inputs, *args, **kwargs)

        trainer.training_step = counted
        trainer.add_callback(Callback())

    def rates(self, warmup: int, rows_per_step: int) -> dict:
        seconds = self.seconds[warmup:] or self.seconds
        tokens = self.tokens[warmup:] or self.tokens
        return {"measured_steps": len(seconds), "step_s": sum(seconds) / len(seconds),
                "rows_per_s": rows_per_step * len(seconds) / sum(seconds), "tokens_per_s": sum(tokens) / sum(seconds),
                "tokens_per_step": sum(tokens) / len(tokens), "step_seconds": self.seconds}


def case_recipe(case: str, steps: int, workdir: str, settings: list[str]):
    """The quickstart recipe (with `settings` overrides) cut to `steps` optimizer steps over exactly the rows
    they use, no side work."""
    from rlhf_ads.config import load

    stage, section, extra, _ = CASES[case]
    base = load(str(RECIPE), settings)
    batch = getattr(base, section).training.batch_size
    overrides = [f"output_dir={workdir}", "run_name=bench", f"{section}.training.max_steps={steps}",
                 f"{section}.training.max_train_rows={steps * batch}", f"{section}.training.save_steps={10 ** 6}",
                 f"{section}.training.max_eval_rows=8", f"{section}.training.warmup_ratio=0", *settings, *extra]
    if stage == "sft":
        overrides.append("sft.num_samples=0")
    return load(str(RECIPE), overrides)


def run_ours(case: str, recipe, meter: StepMeter) -> None:
    """Our stage as `rlhf-ads <stage>` runs it, with the meter attached to its trainer."""
    import rlhf_ads.stages.reward as reward_stage
    import rlhf_ads.stages.sft as sft_stage

    module = sft_stage if CASES[case][0] == "sft" else reward_stage
    original = module.train

    def metered(trainer, training, out_dir):
        meter.attach(trainer)
        return original(trainer, training, out_dir)

    module.train = metered
    module.run(recipe)


def run_trl(case: str, recipe, meter: StepMeter, gradient_checkpointing: bool | None) -> None:
    """TRL's trainer used plainly on the same rows: text columns in, TRL tokenizes; LoRA via peft_config."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_ads.data import load_rows, render_row_prompt, row_completion
    from rlhf_ads.modeling import resolve_base
    from rlhf_ads.stages.common import sample_rows
    from rlhf_ads.stages.reward import pair_texts

    stage = CASES[case][0]
    section = getattr(recipe, stage)
    training, lora = section.training, recipe.model.lora
    encoder = stage == "reward" and recipe.reward.backbone == "encoder"
    folder = resolve_base(recipe.reward.encoder if encoder else recipe.model.base)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    common = dict(output_dir=str(Path(recipe.output_dir) / "trl"), learning_rate=training.learning_rate,
                  max_steps=training.max_steps, per_device_train_batch_size=training.batch_size,
                  max_length=training.max_length, lr_scheduler_type="linear", warmup_steps=0, seed=recipe.seed,
                  data_seed=recipe.seed, save_strategy="no", report_to=[], bf16=False, logging_steps=10)
    if gradient_checkpointing is not None:
        common["gradient_checkpointing"] = gradient_checkpointing
    peft_config = None if encoder or not recipe.model.use_lora else LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules="all-linear",
        task_type="CAUSAL_LM" if stage == "sft" else "SEQ_CLS")
    rows = sample_rows(load_rows(section.train.path, "sft" if stage == "sft" else "preferences"),
                training.max_train_rows, recipe.seed)
    import datasets

    if stage == "sft":
        from trl import SFTConfig, SFTTrainer

        data = datasets.Dataset.from_list([{"prompt": render_row_prompt(r, tokenizer), "completion": row_completion(r)}
                                           for r in rows])
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
        trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=data, processing_class=tokenizer,
                             peft_config=peft_config)
    else:
        from trl import RewardConfig, RewardTrainer

        if tokenizer.eos_token is not None:
            data = datasets.Dataset.from_list([dict(zip(("chosen", "rejected"), pair_texts(r))) for r in rows])
        else:  # TRL appends EOS to text columns and fails without one (BERT-style encoders): give it token ids
            from rlhf_ads.stages.reward import pair_dataset

            data = pair_dataset(rows, tokenizer, training.max_length, None)
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype="float32")
        model.config.pad_token_id = tokenizer.pad_token_id
        trainer = RewardTrainer(model=model, args=RewardConfig(**common), train_dataset=data,
                                processing_class=tokenizer, peft_config=peft_config)
    meter.attach(trainer)
    trainer.train()


def child(args) -> None:
    import torch

    load_before = os.getloadavg()[0]
    case, side = args.child
    recipe = case_recipe(case, args.steps, args.workdir, args.set)
    meter = StepMeter()
    torch.manual_seed(recipe.seed)
    if side == "ours":
        run_ours(case, recipe, meter)
    else:
        run_trl(case, recipe, meter, gradient_checkpointing=False if side == "trl-no-gc" else None)
    section = getattr(recipe, CASES[case][0])
    result = {"case": case, "side": side, "unit": CASES[case][3], "batch_size": section.training.batch_size,
              "peak_rss_bytes": peak_rss_bytes(), "threads": torch.get_num_threads(),
              **meter.rates(args.warmup, section.training.batch_size)}
    write_result(args.result, result, load_before)


# --- driver -----------------------------------------------------------------------------------------------

def run_case_child(case: str, side: str, args, workdir: Path) -> dict | None:
    """One (case, side) child (bench_common.run_child), with its rates and peak memory printed."""
    name = f"{case}-{side}"
    command = [sys.executable, __file__, "--child", case, side, "--steps", str(args.steps), "--warmup",
               str(args.warmup), *[f"--set={setting}" for setting in args.set]]
    result = run_child(name, command, workdir, args.child_timeout, args.threads)
    if result is not None:
        print(f"[bench] {name}: {result['rows_per_s']:.2f} {result['unit']}/s, {result['tokens_per_s']:.0f} "
              f"tokens/s, peak RSS {result['peak_rss_bytes'] / 2 ** 30:.2f} GiB", flush=True)
    return result


def compare(results: list[dict]) -> list[dict]:
    """Per case: our fastest run over the peer's fastest (rows/s), our leanest over its leanest (peak RSS)."""
    rows = []
    for case in dict.fromkeys(r["case"] for r in results):
        ours = [r for r in results if r["case"] == case and r["side"] == "ours"]
        peers = [r for r in results if r["case"] == case and r["side"] != "ours"]
        if not ours or not peers:
            continue
        fastest = max(peers, key=lambda r: r["rows_per_s"])
        leanest = min(peers, key=lambda r: r["peak_rss_bytes"])
        rows.append({"case": case, "speed_ratio": max(r["rows_per_s"] for r in ours) / fastest["rows_per_s"],
                     "speed_peer": fastest["side"], "memory_peer": leanest["side"],
                     "memory_ratio": min(r["peak_rss_bytes"] for r in ours) / leanest["peak_rss_bytes"]})
    return rows


def render(summary: dict) -> str:
    """The 'Training stages' section of RESULTS.md."""
    lines = ["## Training stages: SFT and reward models against TRL's trainers", "",
             f"Generated by `benchmarks/trainers_vs_trl.py` ({summary['finished_at']}); command: `{summary['command']}`.",
             f"TRL {summary['trl_version']}, transformers {summary['transformers_version']}, fp32, "
             f"{summary['steps']} optimizer steps per run, the first {summary['warmup']} left out, "
             f"{summary.get('rounds', 1)} run(s) of each side in alternation, the fastest counting; the quickstart "
             "recipe's settings (SFT: LoRA r=16 on the 135M base, batch 8; RM: batch 16, max length 160; "
             "`rm-causal` = LoRA + score head on the 135M base, `rm-encoder` = the bundled MiniLM, full).",
             "`trl` = TRL's defaults (gradient checkpointing on); `trl-no-gc` = the same with it off. TRL gets text "
             "columns, except for the encoder, whose tokenizer has no EOS for TRL to append: it gets our token ids.", "",
             "| case | run | round | rows/s | tokens/s | s/step | peak RSS (GiB) | load before->after |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in summary["results"]:
        load = r.get("load_average", {})
        lines.append(f"| {r['case']} | {r['side']} | {r.get('round', 1)} | {r['rows_per_s']:.2f} {r['unit']} | "
                     f"{r['tokens_per_s']:.0f} | "
                     f"{r['step_s']:.2f} | {r['peak_rss_bytes'] / 2 ** 30:.2f} | "
                     f"{load.get('before', 0):.1f}->{load.get('after', 0):.1f} |")
    lines += ["", "| case | speed ours / TRL's faster run | memory ours / TRL's leaner run | not slower |",
              "|---|---:|---:|---|"]
    for c in summary["comparisons"]:
        lines.append(f"| {c['case']} | x{c['speed_ratio']:.2f} (vs {c['speed_peer']}) | "
                     f"x{c['memory_ratio']:.2f} (vs {c['memory_peer']}) | {'yes' if c['speed_ratio'] >= 0.97 else 'NO'} |")
    lines += ["", "Rates within 3% count as equal. Between runs minutes apart, the same side's rate can differ by tens of "
              "percent on this shared machine: compare a side's rounds before reading a ratio.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        return child(args)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        sys.exit(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="rlhf-ads-trainers-") as tmp:
        for case in cases:
            for round_number in range(1, args.rounds + 1):
                round_dir = Path(tmp) / f"round-{round_number}"
                round_dir.mkdir(exist_ok=True)
                for side in SIDES:
                    result = run_case_child(case, side, args, round_dir)
                    if result is not None:
                        results.append(dict(result, round=round_number))
    if not results:
        sys.exit("[bench] every run failed; see the log tails above")
    import transformers
    import trl

    summary = {"results": results, "comparisons": compare(results), "steps": args.steps, "warmup": args.warmup,
               "rounds": args.rounds,
               "command": "python " + " ".join([os.path.relpath(__file__, REPO)] + sys.argv[1:]),
               "trl_version": trl.__version__, "transformers_version": transformers.__version__,
               "finished_at": time.strftime("%Y-%m-%d %H:%M %Z")}
    out = Path(args.out)
    (out / "trainers.json").write_text(json.dumps(summary, indent=2))
    results_md = out / "RESULTS.md"
    text = results_md.read_text() if results_md.is_file() else ""
    results_md.write_text(replace_section(text, "trainers", render(summary)))
    for c in summary["comparisons"]:
        print(f"[bench] {c['case']}: ours x{c['speed_ratio']:.2f} the speed of TRL's faster run, "
              f"x{c['memory_ratio']:.2f} the memory of its leaner run")
    print(f"[bench] wrote {results_md} and {out / 'trainers.json'}")


if __name__ == "__main__":
    main()
