"""Latency and throughput, models side by side: per-stage latency, throughput and peak memory.

Each entry (a model on a backend and device) is opened and warmed up, then all entries are timed
in rounds, each entry once per round (``stats.round_robin``), on the whole frame path: decode
(JPEG of the bench image), preprocess, infer, postprocess. The memory column is what opening and
warming an entry added to the process at its peak (the kernel's high-water mark is reset before
each entry where Linux allows it). Callers
may add companion entries per model (``edgercnn bench --eager`` adds torchvision eager from the
build host's side); the runtime itself never imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import UsageError
from ..images import load_image
from ..stats import StageTimes, format_table, round_robin
from ..validators import (
    existing_file_arg,
    non_negative_int_arg,
    output_dir_arg,
    positive_int_arg,
    score_arg,
    side_arg,
)  # fmt: skip

BENCH_STAGES = ("decode", "preprocess", "infer", "postprocess", "total")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mb(key: str) -> float | None:
    """A memory line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB; None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def current_rss_mb() -> float:
    """Resident memory now (Linux ``VmRSS``; 0 where unknown)."""
    return _status_mb("VmRSS") or 0.0


def peak_rss_mb() -> float:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1024.0 / 1024.0


def bench_image(path: str | None, size: tuple[int, int] | None) -> np.ndarray:
    """The bench frame: an image file, or a synthetic scene of ``size`` (w, h) with edges and texture."""
    if path:
        image = load_image(path)
        if size:
            image = cv2.resize(image, size)
        return image
    w, h = size or (1280, 720)
    rng = np.random.default_rng(0)
    image = cv2.resize(rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8), (w, h))
    for _ in range(12):  # the bounds stay valid for any size --size accepts (a 1x1 frame too)
        x, y = int(rng.integers(0, max(1, w - 40))), int(rng.integers(0, max(1, h - 40)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        bw, bh = int(rng.integers(20, max(21, w // 4))), int(rng.integers(20, max(21, h // 3)))
        cv2.rectangle(image, (x, y), (x + bw, y + bh), colour, -1)
    return image


@dataclass
class Entry:
    """One thing being timed: a Detector (or an eager adapter) and what the report says of it."""

    meta: dict[str, Any]  # name, model, backend, precision, flavour
    runner: Any  # has ``detect(images) -> list[Detections]``
    rss_added_mb: float = 0.0
    times: StageTimes = field(default_factory=StageTimes)
    detections: int = 0
    busy_s: float = 0.0


def _frame_path(entry: Entry, buffer: np.ndarray, batch: int, record: bool) -> None:
    """Decode the frame ``batch`` times and detect: the whole path a camera frame takes."""
    t0 = time.perf_counter()
    images = [cv2.imdecode(buffer, cv2.IMREAD_COLOR) for _ in range(batch)]
    t1 = time.perf_counter()
    results = entry.runner.detect(images)
    t2 = time.perf_counter()
    if not record:
        return
    timing = results[0].timings if results else {}
    entry.times.add("decode", (t1 - t0) / batch)
    for stage in ("preprocess", "infer", "postprocess"):
        if stage in timing:
            entry.times.add(stage, timing[stage] / batch)
    entry.times.add("total", (t2 - t0) / batch)
    entry.busy_s += t2 - t0
    entry.detections = sum(len(r) for r in results)


def open_entry(meta: dict[str, Any], opener: Callable[[], Any], buffer: np.ndarray, args: Any) -> Entry:
    """Open and warm one entry, measuring the resident memory it adds at its peak."""
    reset_peak_rss()
    before = current_rss_mb()
    entry = Entry(meta, opener())
    for _ in range(args.warmup):
        _frame_path(entry, buffer, args.batch, record=False)
    entry.rss_added_mb = max(peak_rss_mb() - before, 0.0)
    return entry


def time_entries(entries: list[Entry], buffer: np.ndarray, batch: int, runs: int) -> None:
    """``runs`` rounds, each entry once per round (``stats.round_robin``): load elsewhere hits all alike."""
    calls = {str(i): (lambda e=e: _frame_path(e, buffer, batch, record=True)) for i, e in enumerate(entries)}
    round_robin(calls, runs, warmup=0)


def _entry_name(model: Path, backend: str, device: str) -> str:
    return f"{model.name} [{backend}/{device}]"


# A companion entry for a model: (args, model path, its config) -> (report fields, runner opener).
Companion = Callable[[argparse.Namespace, Path, Any], tuple[dict[str, Any], Callable[[], Any]]]


def collect(args: argparse.Namespace, companions: Sequence[Companion] = ()) -> dict[str, Any]:
    from ..detector import Detector

    image = bench_image(args.image, tuple(args.size) if args.size else None)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    buffer = np.frombuffer(encoded.tobytes(), np.uint8)
    entries: list[Entry] = []
    try:
        for model in args.model:
            for backend in args.backend:

                def open_detector(model: str = model, backend: str = backend) -> Any:
                    return Detector.open(model, backend=backend, device=args.device, threads=args.threads,
                                         score_threshold=args.score)  # fmt: skip

                meta = {"name": _entry_name(Path(model), backend, args.device), "model": str(model)}
                entry = open_entry(meta, open_detector, buffer, args)
                detector = entry.runner
                entry.meta.update(backend=detector.backend.name, precision=detector.config.precision,
                                  flavour=detector.config.flavour)  # fmt: skip
                print(f"bench: {model} on {detector.backend.name} ...", file=sys.stderr)
                entries.append(entry)
                for companion in companions:
                    extra_meta, opener = companion(args, Path(model), detector.config)
                    entries.append(open_entry(extra_meta, opener, buffer, args))
        print(f"bench: {args.runs} rounds over {len(entries)} entries ...", file=sys.stderr)
        time_entries(entries, buffer, args.batch, args.runs)
    finally:
        for entry in entries:
            close = getattr(entry.runner, "close", None)
            if close is not None:
                close()
    return {
        "image_size": [int(image.shape[1]), int(image.shape[0])],
        "batch": args.batch,
        "warmup": args.warmup,
        "runs": args.runs,
        "threads": args.threads,
        "timing": "round robin: every entry once per round",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "entries": [
            {
                **e.meta,
                "stages": e.times.summary(BENCH_STAGES),
                "throughput_fps": args.runs * args.batch / e.busy_s if e.busy_s else 0.0,
                "rss_added_mb": round(e.rss_added_mb, 1),
                "detections_last_frame": e.detections,
            }
            for e in entries
        ],
    }


def to_markdown(report: dict[str, Any]) -> str:
    w, h = report["image_size"]
    machine = report["machine"]
    lines = [
        f"Frame {w}x{h}, batch {report['batch']}, {report['warmup']} warm-up + {report['runs']} timed runs, "
        f"threads {report['threads'] or 'default'}; {machine['platform']}, {machine['cpus']} CPUs.",
        "",
        "| entry | total p50 ms | p90 | p99 | FPS | decode | preprocess | infer | postprocess "
        "| pre+post share | RSS added MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in report["entries"]:
        s = e["stages"]

        def p50(stage: str, s: dict[str, Any] = s) -> str:
            return f"{s[stage]['p50']:.2f}" if stage in s else "-"

        share = "-"
        if "preprocess" in s and "postprocess" in s:
            share = f"{100 * (s['preprocess']['mean'] + s['postprocess']['mean']) / s['total']['mean']:.1f} %"
        lines.append(
            f"| {e['name']} | {p50('total')} | {s['total']['p90']:.2f} | {s['total']['p99']:.2f} | "
            f"{e['throughput_fps']:.2f} | {p50('decode')} | {p50('preprocess')} | {p50('infer')} | "
            f"{p50('postprocess')} | {share} | {e['rss_added_mb']:.0f} |"
        )
    for e in report["entries"]:
        lines += ["", f"**{e['name']}**", "", format_table(e["stages"])]
    return "\n".join(lines) + "\n"


def write_plot(report: dict[str, Any], path: Path) -> bool:
    """Stacked mean per-stage bars per entry; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return False
    entries = report["entries"]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.6 * len(entries)))
    left = np.zeros(len(entries))
    for stage in ("decode", "preprocess", "infer", "postprocess"):
        values = np.array([e["stages"].get(stage, {}).get("mean", 0.0) for e in entries])
        ax.barh([e["name"] for e in entries], values, left=left, label=stage)
        left += values
    ax.set_xlabel("mean ms per frame")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", type=existing_file_arg, required=True, nargs="+", help="model files (ONNX or engines)"
    )
    p.add_argument(
        "--backend",
        nargs="+",
        default=["auto"],
        help="backends to compare (auto onnxruntime openvino tensorrt)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | tensorrt")
    p.add_argument("--threads", type=positive_int_arg, default=None, help="inference threads")
    p.add_argument(
        "--image", type=existing_file_arg, default=None, help="bench frame (default: a synthetic scene)"
    )
    p.add_argument(
        "--size",
        type=side_arg,
        nargs=2,
        metavar=("W", "H"),
        default=None,
        help="frame size (default 1280 720)",
    )
    p.add_argument("--batch", type=positive_int_arg, default=1)
    p.add_argument("--warmup", type=non_negative_int_arg, default=5)
    p.add_argument("--runs", type=positive_int_arg, default=50)
    p.add_argument("--score", type=score_arg, default=None, help="score threshold applied in postprocessing")
    p.add_argument(
        "--out", type=output_dir_arg, default=None, help="folder for bench.md, bench.json, bench.png"
    )
    p.add_argument("--json", action="store_true", help="print the JSON report to stdout")


def run(args: argparse.Namespace, companions: Sequence[Companion] = ()) -> int:
    if args.runs < 1 or args.warmup < 0 or args.batch < 1:
        raise UsageError("--runs and --batch must be >= 1, --warmup >= 0")
    report = collect(args, companions)
    markdown = to_markdown(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.md").write_text(markdown)
        (args.out / "bench.json").write_text(json.dumps(report, indent=2))
        if not write_plot(report, args.out / "bench.png"):
            print("bench: matplotlib not installed, no plot", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(markdown)
    return 0
