"""Per-stage latency bookkeeping shared by ``run`` and ``bench``: percentiles in milliseconds."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable

import numpy as np

STAGES = ("decode", "preprocess", "infer", "postprocess", "sink")


# Samples kept per stage: summaries cover the latest ones, so a service that runs for months at
# 40 frames/s does not grow by half a gigabyte a day.
MAX_SAMPLES = 100_000


class StageTimes:
    """Seconds per frame for each stage (the newest ``max_samples``); summaries in ms (p50/p90/p99, mean)."""

    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        self.samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=max_samples))

    def add(self, stage: str, seconds: float) -> None:
        self.samples[stage].append(seconds)

    def summary(self, stages: tuple[str, ...] | None = None) -> dict[str, dict[str, float]]:
        out = {}
        for stage in stages or tuple(self.samples):
            values = self.samples.get(stage)
            if not values:
                continue
            ms = np.asarray(values) * 1000.0
            p50, p90, p99 = np.percentile(ms, [50, 90, 99])
            out[stage] = {
                "p50": float(p50),
                "p90": float(p90),
                "p99": float(p99),
                "mean": float(ms.mean()),
                "n": len(values),
            }
        return out


def format_table(summary: dict[str, dict[str, float]], title: str = "stage") -> str:
    """A markdown table of a ``StageTimes.summary``."""
    lines = [f"| {title} | p50 ms | p90 ms | p99 ms | mean ms |", "| --- | ---: | ---: | ---: | ---: |"]
    for stage, s in summary.items():
        lines.append(f"| {stage} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | {s['mean']:.2f} |")
    return "\n".join(lines)


def round_robin(calls: dict[str, Callable[[], object]], runs: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each call over ``runs`` rounds, every call once per round after ``warmup`` rounds.

    Interleaving is what makes figures taken on a shared machine comparable: load from anything
    else falls on every entry alike, where timing one entry after another hands each a different
    machine. ``edgercnn bench``, ``edgercnn quantize``'s latency column and the benchmarks use it.
    """
    for _ in range(warmup):
        for call in calls.values():
            call()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return seconds
