"""report.html: one self-contained page (inline CSS, plots as embedded PNG) for a run's evaluation.

Sections: the comparison table; the methods compared (gold, win rate, compliance, diversity, KL beside wall time
and peak memory; validation gold and proxy of the RL stages against completions sampled); PPO curves of proxy
reward against gold utility, KL and response length (so reward over-optimization shows); per-model distributions
of gold utility, composite reward and length; the reward model's accuracy per designer; stage timings; sample ads
side by side.
Inputs missing from the run (no PPO, no reward stage) leave their section out.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from rlhf_ads.config import Recipe
from rlhf_ads.evaluation.comparison import (COLUMNS, comparison_rows, method_costs, read_json, read_jsonl,
                                            validation_curves)
from rlhf_ads.evaluation.stats import format_cell, table_rows
from rlhf_ads.storage import atomic_write_text

HEADLINE_METRICS = ("compliance", "gold", "composite_reward", "distinct_2", "self_bleu", "kl_to_sft",
                    "win_rate_vs_sft", "keyword_coverage", "policy_violations", "mean_chars")
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td.text,th.text{text-align:left;max-width:320px}tr.key td{font-weight:600}img{max-width:100%}
.bad{color:#b00}.meta{color:#666}"""


def write_report(path: Path, recipe: Recipe, metrics: dict[str, float], samples: list[dict], names: list[str],
                 judge: str | None, summary: list[str] = ()) -> None:
    """Render the evaluation (and whatever the run's other stages left on disk) to `path`."""
    run_dir = path.parent.parent
    ppo_log = read_jsonl(recipe.stage_dir("ppo") / "metrics.jsonl")
    validation_log = read_jsonl(recipe.stage_dir("ppo") / "eval.jsonl")
    reward_metrics = read_json(recipe.stage_dir(recipe.reward.output) / "metrics.json").get("metrics", {})
    timings = read_json(run_dir / "pipeline.json").get("seconds", {})
    parts = [f"<h1>rlhf-ads report: {html.escape(recipe.run_name)}</h1>",
             f"<p class=meta>base {html.escape(recipe.model.base)}; {len(samples)} held-out briefs; decoding "
             f"temperature {recipe.evaluate.temperature}; win rates judged by {html.escape(judge or 'the composite reward')}"
             "</p>",
             "<h2>Comparison</h2><p class=meta>Means over the briefs with 95% percentile-bootstrap intervals in "
             "brackets; '_vs_sft' rows are paired differences, brief by brief.</p>", _summary(summary, judge),
             _metrics_table(metrics, names), *_methods_compared(recipe, run_dir, metrics, names)]
    if ppo_log:
        parts += ["<h2>PPO training</h2><p>Proxy (the reward mix the policy optimizes) against gold utility "
                  "(the bundled data's judge, never in the mix): when the proxy climbs and gold does not, the "
                  "policy is over-optimizing the proxy.</p>", _img(_ppo_curves(ppo_log, validation_log))]
    parts += ["<h2>Distributions on held-out briefs</h2>", _img(_distributions(samples, names))]
    if any(k.startswith("rm/accuracy/") for k in reward_metrics):
        parts += ["<h2>Reward model</h2>", _img(_designer_accuracy(reward_metrics)), _reward_summary(reward_metrics)]
    if timings:
        parts += ["<h2>Stage timings</h2>", _timings_table(timings)]
    parts += ["<h2>Sample ads</h2>", _samples_table(samples[: recipe.evaluate.report_samples], names)]
    atomic_write_text(path, f"<!doctype html><html><head><meta charset=utf-8><title>rlhf-ads report</title>"
                            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def _methods_compared(recipe: Recipe, run_dir: Path, metrics: dict[str, float], names: list[str]) -> list[str]:
    """The comparison of methods (rlhf_ads.evaluation.comparison): its table and the validation curves."""
    rows = comparison_rows(metrics, names, method_costs(run_dir, names, recipe.evaluate.best_of_n))
    head = "<tr>" + "".join(f"<th class=text>{html.escape(c)}</th>" for c in COLUMNS) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td{' class=text' if i in (0, 6) else ''}>{html.escape(v)}</td>"
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    parts = ["<h2>Methods compared</h2><p class=meta>Gold utility and compliance on the held-out briefs with 95% "
             "bootstrap intervals; the win rate against SFT is judged by the gold utility, which no method trained on. "
             "KL to SFT is exact for trained adapters, the analytic bound log(n) - (n-1)/n for best-of-n. Wall time is "
             "the whole stage as the pipeline timed it (loading, training, validation, saving), with its training "
             "alone in brackets; peak memory is the stage's peak resident set.</p>", f"<table class=methods>{head}{body}</table>"]
    curves = validation_curves(run_dir, names)
    if len(curves) > 1:  # one RL stage alone: its own section shows its validation
        parts += ["<p>Validation (greedy ads on the same validation briefs) against the completions each RL method "
                  "has sampled: at equal sampling cost, which learns more gold?</p>", _img(_curves_by_completions(curves))]
    return parts


def _metrics_table(metrics: dict[str, float], names: list[str]) -> str:
    rows = table_rows(metrics, names)
    keys = sorted(rows, key=lambda k: (HEADLINE_METRICS.index(k) if k in HEADLINE_METRICS else len(HEADLINE_METRICS), k))
    lines = ["<tr><th class=text>metric</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"]
    for key in keys:
        cells = "".join(f"<td>{html.escape(format_cell(*cell))}</td>" for cell in rows[key])
        lines.append(f"<tr class={'key' if key in HEADLINE_METRICS[:6] else 'other'}><td class=text>{key}</td>{cells}</tr>")
    return f"<table>{''.join(lines)}</table>"


def _summary(sentences: list[str], judge: str | None) -> str:
    """The differences against SFT in words, and which judge PPO trained against (a judge is always a component
    of the reward mix: evaluate.judge_name)."""
    note = (f"<p>win_rate_vs_sft is judged by {html.escape(judge)}, which is part of the reward mix PPO trained "
            "against, so it favours PPO; win_rate_vs_sft_gold is judged by the gold utility, which PPO never saw.</p>"
            if judge is not None else "")
    items = "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
    return note + (f"<ul>{items}</ul>" if items else "")


def _fmt(value) -> str:
    return "&ndash;" if value is None or value != value else f"{value:.3f}"


def _timings_table(seconds: dict[str, float]) -> str:
    rows = "".join(f"<tr><td class=text>{html.escape(s)}</td><td>{t:.0f} s</td></tr>" for s, t in seconds.items())
    return f"<table><tr><th class=text>stage</th><th>wall time</th></tr>{rows}" \
           f"<tr class=key><td class=text>total</td><td>{sum(seconds.values()):.0f} s</td></tr></table>"


def _reward_summary(m: dict) -> str:
    keys = ("rm/accuracy", "rm/gold_agreement", "rm/noise_ceiling", "rm/eval_pairs")
    return "<table>" + "".join(f"<tr><td class=text>{k}</td><td>{_fmt(float(m[k]))}</td></tr>" for k in keys if k in m) + "</table>"


def _samples_table(samples: list[dict], names: list[str]) -> str:
    head = "<tr><th class=text>brief</th>" + "".join(f"<th class=text>{html.escape(n)}</th>" for n in names) + "</tr>"
    rows = []
    for s in samples:
        brief = html.escape(_brief_label(s))
        cells = []
        for name in names:
            r = s[name]
            flags = f" <span class=bad>{', '.join(r['violations'])}</span>" if r["violations"] else ""
            gold = f", gold {r['gold']:.2f}" if r.get("gold") is not None else ""
            cells.append(f"<td class=text>{html.escape(r['ad']) or '<i>(empty)</i>'}<br><span class=meta>"
                         f"{r['chars']} chars{gold}</span>{flags}</td>")
        rows.append(f"<tr><td class=text>{brief}</td>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _brief_label(sample: dict) -> str:
    """'Brand: product (google_rsa headline, <= 30 chars)' for a brief, the prompt's start for a plain prompt."""
    if sample.get("product") is None:
        prompt = sample.get("prompt") or ""
        return prompt if len(prompt) <= 160 else prompt[:157] + "..."
    limit = sample.get("max_chars")
    target = f" ({sample['platform']} {sample['field']}, <= {limit} chars)" if limit else ""
    return f"{sample['brand'] + ': ' if sample.get('brand') else ''}{sample['product']}{target}"


def _figure(ncols: int, width: float = 4.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, 3.2), squeeze=False)


def _img(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return f"<img alt=plot src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def _proxy_and_gold(axis, steps: list[int], proxy: list[float], gold: list[float] | None, title: str) -> None:
    """Proxy reward on the left axis and, when known, gold utility on a twin right axis, against PPO steps."""
    axis.plot(steps, proxy, color="C0", marker="." if len(steps) < 20 else None)
    axis.set_xlabel("PPO step")
    axis.set_ylabel("proxy reward", color="C0")
    if gold is not None:
        twin = axis.twinx()
        twin.plot(steps, gold, color="C3", marker="." if len(steps) < 20 else None)
        twin.set_ylabel("gold utility", color="C3")
    axis.set_title(title)


def _curves_by_completions(curves: dict[str, list[dict[str, float]]]):
    """Validation gold (where scored) and proxy reward of each RL stage against completions sampled."""
    panels = [key for key in ("gold", "reward") if any(key in p for points in curves.values() for p in points)]
    fig, axes = _figure(len(panels))
    for axis, key in zip(axes[0], panels):
        for stage, points in curves.items():
            shown = [p for p in points if key in p]
            axis.plot([p["completions"] for p in shown], [p[key] for p in shown], marker=".", label=stage)
        axis.set(title=f"validation {'gold utility' if key == 'gold' else 'proxy reward'}",
                 xlabel="completions sampled")
        axis.legend(fontsize=8)
    return fig


def _ppo_curves(log: list[dict], validation: list[dict]):
    fig, axes = _figure(4 if validation else 3)
    steps = [r["step"] for r in log]
    proxy, kl, length = axes[0][:3]
    _proxy_and_gold(proxy, steps, [r.get("reward/total", r.get("ppo/score")) for r in log],
                    [r["gold/utility"] for r in log] if all("gold/utility" in r for r in log) else None,
                    "proxy vs gold (rollout batches)")
    if validation:
        _proxy_and_gold(axes[0][3], [r["step"] for r in validation], [r["ppo/eval/reward"] for r in validation],
                        [r["ppo/eval/gold"] for r in validation] if all("ppo/eval/gold" in r for r in validation)
                        else None, "proxy vs gold (validation, greedy)")
    kl.plot(steps, [r["ppo/kl"] for r in log], color="C2")
    kl.set(title="KL to reference (summed)", xlabel="PPO step")
    length.plot(steps, [r["ppo/response_length"] for r in log], color="C4")
    length.set(title="response length (tokens)", xlabel="PPO step")
    return fig


def _distributions(samples: list[dict], names: list[str]):
    keys = [k for k in ("gold", "composite_reward", "chars") if all(k in s[n] for s in samples for n in names)]
    fig, axes = _figure(len(keys))
    for axis, key in zip(axes[0], keys):
        axis.hist([[s[n][key] for s in samples] for n in names], bins=12, label=names, alpha=0.8)
        axis.set(title=key.replace("_", " "), ylabel="ads")
        axis.legend(fontsize=8)
    return fig


def _designer_accuracy(m: dict):
    fig, axes = _figure(1, width=7)
    axis = axes[0][0]
    designers = sorted(k.split("/", 2)[2] for k in m if k.startswith("rm/accuracy/"))
    axis.bar(designers, [m[f"rm/accuracy/{d}"] for d in designers], color="C0")
    for key, style in (("rm/accuracy", "-"), ("rm/noise_ceiling", "--")):
        if key in m:
            axis.axhline(m[key], linestyle=style, color="k", label=key.split("/")[1].replace("_", " "))
    axis.set(ylim=(0.5, 1.0), title="held-out pairwise accuracy per designer")
    axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    axis.legend(fontsize=8)
    return fig
