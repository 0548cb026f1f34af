"""Turning benchmark results into ratios and RESULTS.md. Every number printed comes from the run's results."""

from __future__ import annotations

import shlex
import sys
import time

from floor import cpu_line

GIB = 2 ** 30
PHASES = ["generation", "rollout_logprobs", "rollout_values", "reward", "train_forward", "backward", "optimizer",
          "other"]
SPEED_TARGET, MEMORY_TARGET = 2.0, 0.5  # at equal precision: x2 the peer's better samples/s at x0.5 its leaner memory
DEFAULT_TARGET = {True: 5.0, False: 2.0}  # ours as shipped against the peer as shipped, on a CPU with / without AMX
OURS_DEFAULT = "defaults"  # our mode that runs the stage as shipped, for a run this short (ppo.compile auto: off)
LONG_RUN_DEFAULT = "compiled"  # the stage as shipped for runs of >= 40 steps (ppo.compile auto: on)


def label(result: dict) -> str:
    if result["framework"] != "ours":
        return f"TRL 1.12 {result['mode']}"
    return "ours" if result.get("mode", OURS_DEFAULT) == OURS_DEFAULT else f"ours, {result['mode']}"


def ours_run(results: list[dict], dtype: str, mode: str = OURS_DEFAULT) -> dict | None:
    return next((r for r in results if r["framework"] == "ours" and r.get("mode", OURS_DEFAULT) == mode
                 and r["dtype"] == dtype), None)


def compare(results: list[dict], dtype: str, mode: str = OURS_DEFAULT) -> dict | None:
    """Ours (in one mode) against the peer's better figure at one precision: the fastest peer run for
    speed, the leanest for memory."""
    ours = ours_run(results, dtype, mode)
    peers = [r for r in results if r["framework"] != "ours" and r["dtype"] == dtype]
    if ours is None or not peers:
        return None
    fastest = max(peers, key=lambda r: r["samples_per_s"])
    leanest = min(peers, key=lambda r: r["peak_rss_bytes"])
    speed = ours["samples_per_s"] / fastest["samples_per_s"]
    memory = ours["peak_rss_bytes"] / leanest["peak_rss_bytes"]
    floor_step = ours["floor"][-1]["floor_s"] if ours.get("floor") else None
    return {"speed_ratio": speed, "speed_vs": fastest["mode"], "memory_ratio": memory, "memory_vs": leanest["mode"],
            "speed_ceiling": fastest["step_s"] / floor_step if floor_step else None,
            "speed_target_met": speed >= SPEED_TARGET, "memory_target_met": memory <= MEMORY_TARGET}


def default_ratio(results: list[dict], ours_default_dtype: str, amx: bool, mode: str = OURS_DEFAULT) -> dict | None:
    """Ours as shipped (dtype auto, the stage's defaults: `mode` defaults for short runs, compiled for long
    ones) against the peer as shipped (four full fp32 models)."""
    ours = ours_run(results, ours_default_dtype, mode)
    peer = next((r for r in results if r["framework"] != "ours" and r["mode"] == "full" and r["dtype"] == "fp32"), None)
    if ours is None or peer is None:
        return None
    ratio = ours["samples_per_s"] / peer["samples_per_s"]
    return {"speed_ratio": ratio, "memory_ratio": ours["peak_rss_bytes"] / peer["peak_rss_bytes"],
            "target": DEFAULT_TARGET[bool(amx)], "target_met": ratio >= DEFAULT_TARGET[bool(amx)]}


def compile_costs(results: list[dict]) -> dict[str, dict]:
    """dtype -> what ppo.compile costs and saves: the compiled run's first step (it compiles there, from an
    empty inductor cache) minus the eager run's, the steady step's saving, and the steps that pay it back."""
    costs = {}
    for dtype in dict.fromkeys(r["dtype"] for r in results):
        eager, compiled = ours_run(results, dtype), ours_run(results, dtype, LONG_RUN_DEFAULT)
        if eager is None or compiled is None or not eager.get("steps") or not compiled.get("steps"):
            continue
        extra = compiled["steps"][0]["total_s"] - eager["steps"][0]["total_s"]
        saved = eager["step_s"] - compiled["step_s"]
        costs[dtype] = {"first_step_extra_s": extra, "saved_per_step_s": saved,
                        "payback_steps": extra / saved if saved > 0 else None}
    return costs


def all_comparisons(results: list[dict]) -> dict[str, dict[str, dict]]:
    """dtype -> our mode -> `compare` of that run against the peer at the same precision."""
    dtypes = list(dict.fromkeys(r["dtype"] for r in results))
    modes = list(dict.fromkeys(r.get("mode", OURS_DEFAULT) for r in results if r["framework"] == "ours"))
    return {d: {m: c for m in modes if (c := compare(results, d, m)) is not None} for d in dtypes}


def merge(summaries: list[dict]) -> dict:
    """One summary from several runs of the script (say one per precision): their runs side by side, the
    comparisons redone; the machine probe of the first (each run's floor table keeps its own)."""
    merged = dict(summaries[0], results=[r for s in summaries for r in s["results"]],
                  command=" ; ".join(s["command"] for s in summaries))
    if len(summaries) > 1:
        merged["probes"] = [s["machine"] for s in summaries]
    merged["comparisons"] = all_comparisons(merged["results"])
    merged.update(defaults_and_compile(merged["results"], merged["ours_default_dtype"],
                                       merged["machine"]["cpu"].get("amx")))
    return merged


def defaults_and_compile(results: list[dict], ours_default_dtype: str, amx: bool) -> dict:
    """The summary's default-vs-default ratios (short and long runs: long ones compile only on a CPU with AMX,
    ppo/compiled.py's compile_pays) and compile costs."""
    return {"default_vs_default": default_ratio(results, ours_default_dtype, amx),
            "long_run_default_vs_default": (default_ratio(results, ours_default_dtype, amx, LONG_RUN_DEFAULT)
                                            if amx else None),
            "compile_costs": compile_costs(results)}


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [sys.executable.split("/")[-1], *sys.argv])


def headline(summary: dict) -> str:
    """One line per run and per comparison, for the terminal."""
    lines = [f"{label(r):16s} {r['dtype']}: {r['samples_per_s']:.3f} samples/s, peak RSS "
             f"{r['peak_rss_bytes'] / GIB:.2f} GiB" for r in summary["results"]]
    for dtype, by_mode in summary["comparisons"].items():
        for mode, c in by_mode.items():
            lines.append(f"ours ({mode})/peer {dtype}: speed x{c['speed_ratio']:.2f} (vs {c['speed_vs']}), "
                         f"memory x{c['memory_ratio']:.2f} (vs {c['memory_vs']})")
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "met" if flag else "not met"


def _main_table(summary: dict) -> list[str]:
    lines = ["| run | dtype | samples/s | every round's samples/s | s/step | peak RSS (GiB) | speed ours/this | "
             "memory ours/this |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in summary["results"]:
        ours = ours_run(summary["results"], r["dtype"])
        versus_peer = ours is not None and r["framework"] != "ours"
        speed = f"{ours['samples_per_s'] / r['samples_per_s']:.2f}" if versus_peer else ""
        memory = f"{ours['peak_rss_bytes'] / r['peak_rss_bytes']:.2f}" if versus_peer else ""
        every = ", ".join(f"{x:.3f}" for x in r.get("round_samples_per_s", [r["samples_per_s"]]))
        lines.append(f"| {label(r)} | {r['dtype']} | {r['samples_per_s']:.3f} | {every} | {r['step_s']:.2f} | "
                     f"{r['peak_rss_bytes'] / GIB:.2f} | {speed} | {memory} |")
    return lines


def _targets(summary: dict) -> list[str]:
    lines = []
    for dtype, by_mode in summary["comparisons"].items():
        for mode, c in by_mode.items():
            both = c["speed_target_met"] and c["memory_target_met"]
            lines.append(f"- {dtype}, ours ({mode}): speed **x{c['speed_ratio']:.2f}** the peer's faster run "
                         f"({c['speed_vs']}; target >= {SPEED_TARGET:g}: {_yes(c['speed_target_met'])}), peak memory "
                         f"**x{c['memory_ratio']:.2f}** its leaner run ({c['memory_vs']}; target <= {MEMORY_TARGET:g}: "
                         f"{_yes(c['memory_target_met'])}); both at once: {_yes(both)}."
                         + (f" Ceiling: our step at its floor would be x{c['speed_ceiling']:.2f} the peer's "
                            "measured speed." if c.get("speed_ceiling") else ""))
    if summary.get("machine", {}).get("cpu", {}).get("amx"):
        runs = [("long_run_default_vs_default", "for runs of >= 40 steps, where ppo.compile auto compiles"),
                ("default_vs_default", "for runs this short, eager")]
    else:
        runs = [("default_vs_default", "(eager at any run length: ppo.compile auto does not compile on a CPU "
                                       "without AMX)")]
    for key, which in runs:
        if d := summary.get(key):
            lines.append(f"- Defaults (ours: dtype auto = {summary['ours_default_dtype']} here, the stage's defaults "
                         f"{which}; peer: four full fp32 models): speed **x{d['speed_ratio']:.2f}** (target >= "
                         f"{d['target']:g} on a CPU {'with' if d['target'] == DEFAULT_TARGET[True] else 'without'} AMX: "
                         f"{_yes(d['target_met'])}), memory x{d['memory_ratio']:.2f}.")
    for dtype, c in summary.get("compile_costs", {}).items():
        payback = f", paid back after {c['payback_steps']:.0f} steps" if c["payback_steps"] else ""
        later = (f"each later step {c['saved_per_step_s']:.2f} s shorter{payback}" if c["saved_per_step_s"] > 0 else
                 f"each later step {-c['saved_per_step_s']:.2f} s longer: never paid back")
        lines.append(f"- ppo.compile, {dtype}: the first step took {c['first_step_extra_s']:.0f} s longer than eager's "
                     f"(compiling from an empty inductor cache), {later}.")
    return lines


def _phase_table(summary: dict) -> list[str]:
    runs = summary["results"]
    lines = ["| phase | " + " | ".join(f"{label(r)} {r['dtype']}" for r in runs) + " |",
             "|---|" + "---:|" * len(runs)]
    for phase in PHASES:
        cells = [f"{r['phase_s'].get(phase, 0.0):.2f} ({100 * r['phase_s'].get(phase, 0.0) / r['step_s']:.0f}%)"
                 for r in runs]
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    lines.append("| **step** | " + " | ".join(f"**{r['step_s']:.2f}**" for r in runs) + " |")
    return lines


def _memory_table(summary: dict) -> list[str]:
    """Peak RSS right after each phase of the first step: the phase where a run's peak is set."""
    runs = [r for r in summary["results"] if r["steps"] and r["steps"][0].get("peak_rss_after")]
    if not runs:
        return []
    lines = ["Peak RSS (GiB) right after each phase of the first step:", "",
             "| phase | " + " | ".join(f"{label(r)} {r['dtype']}" for r in runs) + " |", "|---|" + "---:|" * len(runs)]
    for phase in PHASES[:-1]:
        cells = [r["steps"][0]["peak_rss_after"].get(phase) for r in runs]
        lines.append(f"| {phase} | " + " | ".join(f"{c / GIB:.2f}" if c else "" for c in cells) + " |")
    lines.append("| end of run | " + " | ".join(f"{r['peak_rss_bytes'] / GIB:.2f}" for r in runs) + " |")
    return lines + [""]


def _floor_tables(summary: dict) -> list[str]:
    lines = []
    for r in summary["results"]:
        lines += ["", f"**{label(r)}, {r['dtype']}** (mean measured step)", "",
                  "| phase | measured s | GFLOP | GB read | floor s | measured / floor |",
                  "|---|---:|---:|---:|---:|---:|"]
        for row in r["floor"]:
            ratio = f"{row['x_floor']:.1f}x" if row["x_floor"] is not None else ""
            lines.append(f"| {row['phase']} | {row['measured_s']:.2f} | {row['gflop']:.0f} | {row['gb_read']:.1f} | "
                         f"{row['floor_s']:.2f} | {ratio} |")
    return lines


def _where_time_goes(summary: dict) -> list[str]:
    """Generated sentences: the biggest phases of our step and how far each is from its floor."""
    lines = []
    for r in (r for r in summary["results"] if r["framework"] == "ours"):
        floors = {row["phase"]: row for row in r["floor"]}
        ranked = sorted(((p, s) for p, s in r["phase_s"].items()), key=lambda x: -x[1])[:4]
        parts = []
        for phase, seconds in ranked:
            x = floors.get(phase, {}).get("x_floor")
            parts.append(f"{phase} {seconds:.2f} s ({100 * seconds / r['step_s']:.0f}%"
                         + (f", {x:.1f}x its floor)" if x else ")"))
        lines.append(f"- {label(r)} {r['dtype']}: step {r['step_s']:.2f} s = " + "; ".join(parts) + ".")
    return lines


def _loads(summary: dict) -> str:
    return ", ".join(f"{label(r)} {r['dtype']} {r['load_average']['before']:.1f}->{r['load_average']['after']:.1f}"
                     for r in summary["results"])


def _contention_note(summary: dict) -> list[str]:
    """A warning when other jobs shared the CPU: the rates then measure contention as much as code."""
    cpus = summary["machine"]["cpu"]["cpus"]
    peak = max(max(r["load_average"].values()) for r in summary["results"])
    if peak <= cpus:
        return [""]
    return ["", f"**Shared machine:** the load average reached {peak:.1f} on {cpus} CPUs during these runs, so other "
            "jobs took CPU time from every run (by different amounts). Ratios between runs carry that noise; the "
            "floor tables use rates probed under the same conditions. Rerun on an idle machine for clean numbers.", ""]


def render(summary: dict) -> str:
    """RESULTS.md: the latest run's numbers, machine, command, ratios, phase split and floor tables."""
    m, spec = summary["machine"], summary["spec"]
    cpu = m["cpu"]
    rates = " / ".join(", ".join(f"{d} {v / 1e12:.3f} TFLOP/s" for d, v in probe["matmul_flops"].items())
                       + f", read {probe['read_bytes_per_s'] / 1e9:.1f} GB/s" for probe in summary.get("probes", [m]))
    text = [
        "# PPO benchmark: rlhf-ads vs TRL 1.12 PPOTrainer", "",
        f"Generated by `benchmarks/ppo_vs_trl.py` (runs finished {summary.get('finished_at', '?')}, rendered "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}); rerun to refresh.", "",
        f"- Command: `{summary['command']}`",
        f"- Machine: {cpu_line(cpu)}, torch threads {m['torch_threads']}; "
        f"1-minute load average around the runs: {_loads(summary)}",
        f"- Measured here (matmul {m['matmul_n']}^3; one probe per invocation): {rates}",
        f"- Work: base `{spec['base']}`, prompts `{spec['prompts']}` (same ids per step for both), batch "
        f"{spec['batch_size']}, minibatch {spec['mini_batch_size']}, {spec['new_tokens']} new tokens, 1 PPO epoch, "
        f"learned reward + value model on the same base, LoRA r={spec['lora']['r']}; {spec['steps']} steps, the first "
        f"{spec['warmup']} left out as warm-up; each run {summary.get('rounds', 1)} time(s) in alternation with the "
        "others, its fastest counting. Peak RSS: getrusage(RUSAGE_SELF) in each child process.", "",
        *_contention_note(summary),
        "## Throughput and memory", "", *_main_table(summary), "", "## Targets", "", *_targets(summary), "",
        "## Where time goes (seconds per step, share of the step)", "", *_phase_table(summary), "",
        *_where_time_goes(summary), "", *_memory_table(summary),
        "Phases are timed from outside by wrapping functions (see benchmarks/README.md). TRL takes the policy's "
        "rollout log-probs from the sampling logits, so its `rollout_logprobs` is the reference pass only; ours "
        "adds a policy forward (the update's own, so that the first ratios are exactly 1), which with the shared "
        "critic also gives the values; for the update's first micro-batch that forward is the training forward "
        "itself, run with gradients and kept for the update, so it counts as `train_forward`. "
        "With gradient checkpointing the recomputed forward counts as `backward`. Our reward model reads the "
        "compact brief context plus the ad, TRL's reads the whole prompt plus the response.", "",
        "## Floor", "",
        "FLOPs and bytes per phase of one mean step, divided by the rates measured above "
        "(benchmarks/floor.py states the counting rules). `other` has no floor of its own.",
        *_floor_tables(summary), ""]
    return "\n".join(text)
