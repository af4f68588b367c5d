"""``edgercnn demo``: the whole pipeline on the bundled reference Mask R-CNN, in one command.

Export (portable and TensorRT-flavour ONNX) -> INT8 (Q/DQ ONNX + TensorRT calibration cache,
AP measured on a generated validation set) -> detection parity against torchvision eager ->
the torch-free runtime on the bundled sample video (annotated video + JSONL) -> a side-by-side
latency table. Each step is one of the project's own subcommands, so the demo shows exactly
what a user would run by hand; the commands are printed as they run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edgercnn.export.refmodels.assets import asset_path

DEFAULT_CARD = asset_path("models", "ref_maskrcnn.json")
DEFAULT_VIDEO = asset_path("samples", "synth_street.mp4")
DEFAULT_CALIB = asset_path("calib_data", "synth")


class DemoStepFailed(RuntimeError):
    """A subcommand of the demo exited non-zero (its own message was already printed)."""


def _step(title: str, command: str, func: Callable[[list[str]], int], argv: list[str]) -> float:
    """Print the equivalent shell command, run it in-process, return its wall time."""
    print(f"\n=== {title}\n$ edgercnn {command} {shlex.join(argv)}", flush=True)
    started = time.perf_counter()
    status = func(argv)
    seconds = time.perf_counter() - started
    if status:
        raise DemoStepFailed(f"'edgercnn {command}' exited with status {status}")
    print(f"--- {title}: {seconds:.1f}s", flush=True)
    return seconds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgercnn demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--card", type=Path, default=DEFAULT_CARD, help="model card (default: ref_maskrcnn)")
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="input video (default: bundled sample)")
    p.add_argument("--calib", type=Path, default=DEFAULT_CALIB, help="calibration set for INT8")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--val-images", type=int, default=24, help="generated validation images for AP/parity")
    p.add_argument("--max-frames", type=int, default=120, help="video frames to run (default 120)")
    p.add_argument("--skip-int8", action="store_true", help="leave out the INT8 step")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for path, what in (
        (args.card, "model card"),
        (args.video, "sample video"),
        (args.calib, "calibration set"),
    ):
        if not path.exists():
            print(f"edgercnn demo: error: {path}: {what} not found", file=sys.stderr)
            return 2
    from edgercnn.export import cli as export_cli
    from edgercnn.export import parity
    from edgercnn.export.refmodels.synthdata import cli as synth_cli
    from edgercnn.runtime.commands import bench
    from edgercnn.runtime.commands import run as run_cli

    from edgercnn.cli import quantize as quantize_cli

    out: Path = args.out
    onnx_dir, val_dir = out / "onnx", out / "val"
    portable, trt_flavour = onnx_dir / "model.onnx", onnx_dir / "model.trt.onnx"
    timings: dict[str, float] = {}
    try:
        timings["export"] = _step(
            "1. export: checkpoint -> portable and TensorRT-flavour ONNX",
            "export",
            export_cli.main,
            ["--card", str(args.card), "--flavour", "portable,tensorrt", "--out", str(onnx_dir)],
        )
        timings["validation set"] = _step(
            "2. a generated validation set (seeded, not used in training)",
            "synth",
            synth_cli.main,
            [
                "--out",
                str(val_dir),
                "--train",
                "0",
                "--val",
                str(args.val_images),
                "--calib",
                "0",
                "--seed",
                "7",
                "--no-progress",
            ],
        )
        ann = val_dir / "annotations" / "val.json"
        models = [portable, trt_flavour]
        if not args.skip_int8:
            timings["int8"] = _step(
                "3. INT8: Q/DQ ONNX for CPUs and TensorRT, TensorRT 10 calibration cache, AP cost",
                "quantize",
                quantize_cli.main,
                [
                    "--onnx",
                    str(portable),
                    "--calib",
                    str(args.calib),
                    "--variant",
                    "cpu,tensorrt",
                    "--cpu-layout",
                    "u8s8",
                    "--eval-images",
                    str(val_dir / "val"),
                    "--eval-ann",
                    str(ann),
                    "--no-progress",
                ],
            )
            models.append(onnx_dir / "model.int8.cpu.onnx")
        timings["parity"] = _step(
            "4. parity: torchvision eager vs deploy graph vs both ONNX flavours (detections, AP)",
            "parity",
            parity.main,
            [
                "--card",
                str(args.card),
                "--coco",
                str(ann),
                "--image-dir",
                str(val_dir / "val"),
                "--limit",
                str(args.val_images),
                "--onnx-dir",
                str(onnx_dir),
            ],
        )
        timings["run"] = _step(
            "5. runtime (no torch): the sample video -> annotated video + JSONL",
            "run",
            run_cli.main,
            [
                "--model",
                str(portable),
                "--source",
                str(args.video),
                "--out",
                str(out / "run"),
                "--max-frames",
                str(args.max_frames),
                "--no-images",
                "--no-progress",
            ],
        )
        timings["bench"] = _step(
            "6. latency side by side (onnxruntime CPU)",
            "bench",
            bench.main,
            [
                "--model",
                *map(str, models),
                "--size",
                "384",
                "288",
                "--warmup",
                "2",
                "--runs",
                "10",
                "--out",
                str(out / "bench"),
            ],
        )
    except DemoStepFailed as exc:
        print(f"edgercnn demo: error: {exc}", file=sys.stderr)
        return 1
    print("\n=== demo finished: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    print(f"outputs in {out}/: onnx/ (models, INT8 report), run/ (annotated video, detections.jsonl), bench/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
