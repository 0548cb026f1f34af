"""Helpers shared by the benchmark's child processes: phase timers, peak memory, result files.

Imports only the standard library and torch, because the peer child runs in another virtualenv
(trl==1.12.0) that does not have rlhf_ads installed.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PhaseTimer:
    """Wall time per named phase, collected per PPO step.

    `wrap(owner, attr, name)` replaces `owner.attr` with a timed copy; `name` is a string or a function
    of the call's (args, kwargs) returning the phase name (or None to leave the call untimed).
    `observe(result, args, kwargs)` optionally records shapes of a call into the current step.
    Phases must not nest: wrap only functions that do not call each other. `synchronize` (e.g.
    torch.cuda.synchronize) is called around each timed call, so that asynchronous GPU work lands in its phase.
    """

    def __init__(self, synchronize: Callable[[], None] | None = None):
        self.synchronize = synchronize or (lambda: None)
        self.current: dict[str, float] = defaultdict(float)
        self.shapes: dict[str, Any] = {}
        self.peak_after: dict[str, int] = {}  # peak RSS right after each phase: which phase raised it
        self.steps: list[dict] = []
        self.missing: list[str] = []

    def wrap(self, owner, attr: str, name: str | Callable, observe: Callable | None = None) -> None:
        original = getattr(owner, attr, None)
        if original is None:  # the library changed: keep going, say which timer is missing
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            return

        @functools.wraps(original)
        def timed(*args, **kwargs):
            phase = name(args, kwargs) if callable(name) else name
            if phase is not None:
                self.synchronize()
            start = time.perf_counter()
            result = original(*args, **kwargs)
            if phase is not None:
                self.synchronize()
                self.current[phase] += time.perf_counter() - start
                self.peak_after[phase] = max(self.peak_after.get(phase, 0), peak_rss_bytes())
            if observe is not None:
                observe(self.shapes, result, args, kwargs)
            return result

        setattr(owner, attr, timed)

    def end_step(self, total_s: float) -> None:
        """Close one PPO step: its total wall time, its phases, and 'other' for the rest."""
        phases = dict(self.current)
        phases["other"] = max(0.0, total_s - sum(phases.values()))
        self.steps.append({"total_s": total_s, "phases": phases, "shapes": dict(self.shapes),
                           "peak_rss_after": dict(self.peak_after)})
        self.current.clear()
        self.shapes.clear()


def steady_state(steps: list[dict], batch_size: int, warmup: int = 1) -> dict:
    """Samples/s and mean phase seconds over the steps after `warmup` (all steps if there are no more)."""
    measured = steps[warmup:] or steps
    seconds = sum(s["total_s"] for s in measured)
    names = sorted({k for s in measured for k in s["phases"]})
    return {"measured_steps": len(measured), "step_s": seconds / len(measured),
            "samples_per_s": batch_size * len(measured) / seconds,
            "phase_s": {k: sum(s["phases"].get(k, 0.0) for s in measured) / len(measured) for k in names}}


def write_result(path: str | Path, result: dict, load_before: float) -> None:
    """Write a child's result JSON (the driver reads it back), with the 1-minute load average before and
    after the run: on a shared machine other jobs slow the run down."""
    result["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
    Path(path).write_text(json.dumps(result, indent=2))


def grad_phase(training: str, scoring: str) -> Callable:
    """A phase-name function: `training` when autograd is on (the PPO update), else `scoring` (rollout)."""
    import torch

    return lambda args, kwargs: training if torch.is_grad_enabled() else scoring


def _marks(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def marked_section(text: str, name: str) -> str | None:
    """The body of the section `name` marked in `text` (see replace_section), or None."""
    start, end = _marks(name)
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def replace_section(text: str, name: str, body: str, before: str | None = None) -> str:
    """`text` with the section `name` (between HTML-comment marks) set to `body`; when absent, inserted
    ahead of the section `before` if there is one, else appended. Benchmarks share RESULTS.md this way,
    each rewriting only its own part."""
    start, end = _marks(name)
    block = f"{start}\n{body.strip()}\n{end}\n"
    if marked_section(text, name) is not None:
        head, rest = text.split(start, 1)
        return head + block + rest.split(end, 1)[1].lstrip("\n")
    if before is not None and marked_section(text, before) is not None:
        head, rest = text.split(_marks(before)[0], 1)
        return f"{head}{block}\n{_marks(before)[0]}{rest}"
    return f"{text.rstrip()}\n\n{block}" if text.strip() else block


def write_keeping_sections(path: Path, text: str,
                           names: tuple[str, ...] = ("trainers", "precision", "history")) -> None:
    """Write `text` to `path`, carrying over the marked sections `names` from the file's current contents
    (the other benchmark's results; the hand-written history of changes and what each gained)."""
    old = path.read_text() if path.is_file() else ""
    for name in names:
        body = marked_section(old, name)
        if body is not None:
            text = replace_section(text, name, body)
    path.write_text(text)


CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false",
             "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}


def run_child(name: str, command: list[str], workdir: Path, timeout: int, threads: int | None) -> dict | None:
    """Run one benchmark child with `--result FILE --workdir DIR` appended (its log in workdir/<name>.log);
    return its result JSON, or None (printing its log tail) when it failed."""
    result_file, log_file, run_dir = workdir / f"{name}.json", workdir / f"{name}.log", workdir / name
    run_dir.mkdir()
    env = {**os.environ, **CHILD_ENV, "TORCHINDUCTOR_CACHE_DIR": str(run_dir / "inductor")}  # compiles from cold
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print(f"[bench] {name} ...", flush=True)
    with log_file.open("w") as log:
        try:
            code = subprocess.run(command + ["--result", str(result_file), "--workdir", str(run_dir)], stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout, env=env).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    if code != 0 or not result_file.is_file():
        print(f"[bench] {name} failed ({code}); log tail:\n{log_file.read_text()[-3000:]}", file=sys.stderr, flush=True)
        return None
    return json.loads(result_file.read_text())
