"""Latency and throughput, models side by side: per-stage latency, throughput and peak memory.

Each entry (a model on a backend and device) gets warm-up runs, then N timed runs of the whole
frame path: decode (JPEG of the bench image), preprocess, infer, postprocess. Peak RSS is measured
per entry (the kernel's high-water mark is reset between entries where Linux allows it). Callers
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
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import UsageError
from ..images import load_image
from ..stats import StageTimes, format_table
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


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
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


def run_entry(runner: Any, encoded: bytes, batch: int, warmup: int, runs: int) -> dict[str, Any]:
    """Time ``runner.detect`` (a Detector or an eager adapter) on ``batch`` copies of the frame."""
    buffer = np.frombuffer(encoded, np.uint8)
    for _ in range(warmup):
        runner.detect([cv2.imdecode(buffer, cv2.IMREAD_COLOR) for _ in range(batch)])
    times = StageTimes()
    reset_ok = reset_peak_rss()
    detections = 0
    start = time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        images = [cv2.imdecode(buffer, cv2.IMREAD_COLOR) for _ in range(batch)]
        t1 = time.perf_counter()
        results = runner.detect(images)
        t2 = time.perf_counter()
        timing = results[0].timings if results else {}
        times.add("decode", (t1 - t0) / batch)
        for stage in ("preprocess", "infer", "postprocess"):
            if stage in timing:
                times.add(stage, timing[stage] / batch)
        times.add("total", (t2 - t0) / batch)
        detections = sum(len(r) for r in results)
    wall = time.perf_counter() - start
    return {
        "stages": times.summary(BENCH_STAGES),
        "throughput_fps": runs * batch / wall,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_is_per_entry": reset_ok,
        "detections_last_frame": detections,
    }


def _entry_name(model: Path, backend: str, device: str) -> str:
    return f"{model.name} [{backend}/{device}]"


# A companion entry: (args, model path, its config, the encoded bench frame) -> an entry dict.
Companion = Callable[[argparse.Namespace, Path, Any, bytes], dict[str, Any]]


def collect(args: argparse.Namespace, companions: Sequence[Companion] = ()) -> dict[str, Any]:
    from ..detector import Detector

    image = bench_image(args.image, tuple(args.size) if args.size else None)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    entries = []
    for model in args.model:
        for backend in args.backend:
            detector = Detector.open(
                model, backend=backend, device=args.device, threads=args.threads, score_threshold=args.score
            )
            print(f"bench: {model} on {detector.backend.name} ...", file=sys.stderr)
            result = run_entry(detector, encoded.tobytes(), args.batch, args.warmup, args.runs)
            entries.append(
                {
                    "name": _entry_name(Path(model), backend, args.device),
                    "model": str(model),
                    "backend": detector.backend.name,
                    "precision": detector.config.precision,
                    "flavour": detector.config.flavour,
                    **result,
                }
            )
            detector.close()
            for companion in companions:
                entries.append(companion(args, Path(model), detector.config, encoded.tobytes()))
    return {
        "image_size": [int(image.shape[1]), int(image.shape[0])],
        "batch": args.batch,
        "warmup": args.warmup,
        "runs": args.runs,
        "threads": args.threads,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "entries": entries,
    }


def to_markdown(report: dict[str, Any]) -> str:
    w, h = report["image_size"]
    machine = report["machine"]
    lines = [
        f"Frame {w}x{h}, batch {report['batch']}, {report['warmup']} warm-up + {report['runs']} timed runs, "
        f"threads {report['threads'] or 'default'}; {machine['platform']}, {machine['cpus']} CPUs.",
        "",
        "| entry | total p50 ms | p90 | p99 | FPS | decode | preprocess | infer | postprocess "
        "| pre+post share | peak RSS MB |",
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
            f"{p50('postprocess')} | {share} | {e['peak_rss_mb']:.0f} |"
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
        "--backend", nargs="+", default=["auto"], help="backends to compare (auto onnxruntime tensorrt)"
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
