"""Peak memory of a stage, for the comparison of methods: the process's peak resident set size and, on GPUs,
torch's peak allocated memory.

On Linux the peak RSS (VmHWM) is reset at a stage's start (writing 5 to /proc/self/clear_refs, Linux >= 4.0), so
the stages of one pipeline process are measured apart; elsewhere it is the process's lifetime peak
(getrusage), an upper bound for every stage after the first.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_memory() -> None:
    """Start measuring a new peak from the current use (where the platform allows)."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        pass  # not Linux, or not allowed: the lifetime peak stands
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_rss_mb() -> float:
    """Peak resident set size since the last reset (Linux), else over the process's life, in MiB."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB on Linux


def peak_memory_metrics(stage: str) -> dict[str, float]:
    """<stage>/peak_rss_mb and, on a GPU, <stage>/peak_gpu_mb (torch's peak allocated memory on this device)."""
    metrics = {f"{stage}/peak_rss_mb": round(peak_rss_mb(), 1)}
    if torch.cuda.is_available():
        metrics[f"{stage}/peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return metrics
