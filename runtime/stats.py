"""Per-stage latency bookkeeping shared by ``run`` and ``bench``: percentiles in milliseconds."""

from __future__ import annotations

from collections import defaultdict, deque

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
