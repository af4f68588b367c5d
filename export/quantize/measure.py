"""Measurements behind every INT8 decision: latency, where the time goes, detection agreement.

Speed is measured end to end on the graph (median of several runs after a warm-up, fixed thread
count) and split by onnxruntime's profiler into int8 kernels, Q/DQ conversions and float ops,
so the report can say how much time stays in float. Agreement between two models is measured
on detections (``runtime.matching.detection_distance``: matched by label and IoU, weighted by
score), never on raw padded tensors, whose rows past ``num_detections`` are garbage by design.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from edgercnn.runtime.sessions import session_options
from edgercnn.runtime.stats import round_robin

INT8_KERNEL_PREFIXES = ("QLinear", "QGemm", "MatMulInteger", "ConvInteger", "DynamicQuantize")
QDQ_KERNELS = ("QuantizeLinear", "DequantizeLinear")


def open_session(path: str | Path, threads: int = 2, profile_dir: str | None = None) -> ort.InferenceSession:
    """A quiet CPU session with a fixed thread count (profiling into ``profile_dir`` if given)."""
    prefix = None if profile_dir is None else str(Path(profile_dir) / "profile")
    options = session_options(threads=threads, log_severity=3, profile_prefix=prefix)
    from edgercnn.runtime.plugin_ops import (
        create_session,  # plain session, or plugin nodes on the CPU kernels
    )

    return create_session(path, options, ["CPUExecutionProvider"])


def compare_latency(
    paths: dict[str, str | Path], feed: dict[str, np.ndarray], threads: int = 2, runs: int = 5
) -> dict[str, float]:
    """Median ms per model, the models run in turn (round robin) so that a machine shared with other
    work slows them all alike; timings taken one model after the other drift with the load."""
    sessions = {name: open_session(path, threads) for name, path in paths.items()}
    calls = {name: (lambda s=session: s.run(None, feed)) for name, session in sessions.items()}
    seconds = round_robin(calls, runs, warmup=1)  # the same rounds as ``edgercnn bench``
    return {name: float(statistics.median(values)) * 1000.0 for name, values in seconds.items()}


@dataclass
class TimeSplit:
    """Milliseconds per run in int8 kernels, in Q/DQ conversions and in float ops, plus the top float ops."""

    int8_ms: float
    qdq_ms: float
    float_ms: float
    top_float_ops: list[tuple[str, float]]

    @property
    def float_share(self) -> float:
        total = self.int8_ms + self.qdq_ms + self.float_ms
        return self.float_ms / total if total > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "int8_ms": round(self.int8_ms, 2),
            "qdq_ms": round(self.qdq_ms, 2),
            "float_ms": round(self.float_ms, 2),
            "float_share": round(self.float_share, 3),
            "top_float_ops": [[op, round(ms, 2)] for op, ms in self.top_float_ops],
        }


def time_split(path: str | Path, feed: dict[str, np.ndarray], threads: int = 2, runs: int = 3) -> TimeSplit:
    """Per-kernel time from onnxruntime's profiler, grouped as int8 / Q-DQ / float, per run."""
    with tempfile.TemporaryDirectory(prefix="edgercnn-prof-") as tmp:
        session = open_session(path, threads, profile_dir=tmp)
        for _ in range(runs + 1):
            session.run(None, feed)
        profile = session.end_profiling()
        events = json.loads(Path(profile).read_text())
        os.unlink(profile)
    per_op: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        per_op[str(event.get("args", {}).get("op_name", "?"))] += float(event.get("dur", 0)) / 1000.0
    scale = 1.0 / (runs + 1)
    int8 = sum(ms for op, ms in per_op.items() if op.startswith(INT8_KERNEL_PREFIXES)) * scale
    qdq = sum(ms for op, ms in per_op.items() if op in QDQ_KERNELS) * scale
    floats = {
        op: ms * scale for op, ms in per_op.items() if not op.startswith(INT8_KERNEL_PREFIXES + QDQ_KERNELS)
    }
    top = sorted(floats.items(), key=lambda kv: -kv[1])[:6]
    return TimeSplit(int8, qdq, sum(floats.values()), top)


def run_outputs(session: ort.InferenceSession, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [out.name for out in session.get_outputs()]
    return dict(zip(names, session.run(None, feed), strict=True))
