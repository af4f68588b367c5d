"""Measurements behind every INT8 decision: latency, where the time goes, detection agreement.

Speed is measured end to end on the graph (median of several runs after a warm-up, fixed thread
count) and split by onnxruntime's profiler into int8 kernels, Q/DQ conversions and float ops,
so the report can say how much time stays in float. Agreement between two models is measured
on detections (matched by label and IoU, weighted by score), never on raw padded tensors,
whose rows past ``num_detections`` are garbage by design.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

INT8_KERNEL_PREFIXES = ("QLinear", "QGemm", "MatMulInteger", "ConvInteger", "DynamicQuantize")
QDQ_KERNELS = ("QuantizeLinear", "DequantizeLinear")


def open_session(path: str | Path, threads: int = 2, profile_dir: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(profile_dir) / "profile")
    from edgercnn.runtime.plugin_ops import (
        create_session,  # plain session, or plugin nodes on the CPU kernels
    )

    return create_session(path, options, ["CPUExecutionProvider"])


def latency_ms(path: str | Path, feed: dict[str, np.ndarray], threads: int = 2, runs: int = 5) -> float:
    """Median wall time of one inference, after one warm-up run."""
    session = open_session(path, threads)
    session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def compare_latency(
    paths: dict[str, str | Path], feed: dict[str, np.ndarray], threads: int = 2, runs: int = 5
) -> dict[str, float]:
    """Median ms per model, the models run in turn (round robin) so that a machine shared with other
    work slows them all alike; timings taken one model after the other drift with the load."""
    sessions = {name: open_session(path, threads) for name, path in paths.items()}
    for session in sessions.values():
        session.run(None, feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(runs):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feed)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: float(statistics.median(values)) for name, values in times.items()}


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


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def detection_distance(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> float:
    """0 when two models' detections agree, 1 when none match, over every image of the batch.

    Greedy matching by decreasing reference score: same label, best IoU. A match contributes
    ``IoU * min(score_ref, score_cand)``; the total is normalized by the larger score mass, so
    missed, extra, moved and re-scored detections all count.
    """
    agreed = 0.0
    mass = 0.0
    for i in range(reference["num_detections"].shape[0]):
        n_ref = int(reference["num_detections"][i])
        n_cand = int(candidate["num_detections"][i])
        ref_boxes, ref_scores = reference["boxes"][i, :n_ref], reference["scores"][i, :n_ref]
        ref_labels = reference["labels"][i, :n_ref]
        cand_boxes, cand_scores = candidate["boxes"][i, :n_cand], candidate["scores"][i, :n_cand]
        cand_labels = candidate["labels"][i, :n_cand]
        mass += max(float(ref_scores.sum()), float(cand_scores.sum()))
        free = np.ones(n_cand, dtype=bool)
        for j in np.argsort(-ref_scores, kind="stable"):
            options = free & (cand_labels == ref_labels[j])
            if not options.any():
                continue
            ious = np.where(options, _iou(ref_boxes[j], cand_boxes), -1.0)
            best = int(np.argmax(ious))
            if ious[best] <= 0:
                continue
            free[best] = False
            agreed += float(ious[best]) * min(float(ref_scores[j]), float(cand_scores[best]))
    return 0.0 if mass == 0 else 1.0 - agreed / mass
