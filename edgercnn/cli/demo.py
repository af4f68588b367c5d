"""The whole pipeline on the bundled reference Mask R-CNN, in one command.

Export (portable and TensorRT-flavour ONNX) -> INT8 (Q/DQ ONNX + TensorRT calibration cache,
AP measured on a generated validation set) -> detection parity against torchvision eager ->
the torch-free runtime on the bundled sample video (annotated video + JSONL) -> a side-by-side
latency table. Each step is one of the project's own subcommands, so the demo shows exactly
what a user would run by hand; the commands are printed as they run.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from edgercnn.export.refmodels.assets import asset_path
from edgercnn.runtime.errors import EdgercnnError, UsageError
from edgercnn.runtime.validators import existing_dir_arg, existing_file_arg, output_dir_arg, positive_int_arg

DEFAULT_CARD = asset_path("models", "ref_maskrcnn.json")
DEFAULT_VIDEO = asset_path("samples", "synth_street.mp4")
DEFAULT_CALIB = asset_path("calib_data", "synth")


class DemoStepFailed(EdgercnnError):
    """A subcommand of the demo exited non-zero (its own message was already printed)."""

    exit_code = 1


def _step(title: str, command: str, argv: list[str]) -> float:
    """Print the equivalent shell command, run it in-process through the dispatcher, return its wall time."""
    from edgercnn.cli import main as edgercnn_main

    print(f"\n=== {title}\n$ edgercnn {command} {shlex.join(argv)}", flush=True)
    started = time.perf_counter()
    status = edgercnn_main([command, *argv])
    seconds = time.perf_counter() - started
    if status:
        raise DemoStepFailed(f"'edgercnn {command}' exited with status {status}")
    print(f"--- {title}: {seconds:.1f}s", flush=True)
    return seconds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--card", type=existing_file_arg, default=DEFAULT_CARD, help="model card (default: ref_maskrcnn)"
    )
    p.add_argument(
        "--video", type=existing_file_arg, default=DEFAULT_VIDEO, help="input video (default: bundled sample)"
    )
    p.add_argument("--calib", type=existing_dir_arg, default=DEFAULT_CALIB, help="calibration set for INT8")
    p.add_argument(
        "--out", type=output_dir_arg, default=Path("demo_out"), help="output folder (default demo_out)"
    )
    p.add_argument(
        "--val-images", type=positive_int_arg, default=24, help="generated validation images for AP/parity"
    )
    p.add_argument(
        "--max-frames", type=positive_int_arg, default=120, help="video frames to run (default 120)"
    )
    p.add_argument("--skip-int8", action="store_true", help="leave out the INT8 step")


def run(args: argparse.Namespace) -> int:
    for path, what in (
        (args.card, "model card"),
        (args.video, "sample video"),
        (args.calib, "calibration set"),
    ):
        if not path.exists():
            raise UsageError(f"{path}: {what} not found")
    out: Path = args.out
    onnx_dir, val_dir = out / "onnx", out / "val"
    portable, trt_flavour = onnx_dir / "model.onnx", onnx_dir / "model.trt.onnx"
    timings: dict[str, float] = {}
    timings["export"] = _step(
        "1. export: checkpoint -> portable and TensorRT-flavour ONNX",
        "export",
        ["--card", str(args.card), "--flavour", "portable,tensorrt", "--out", str(onnx_dir)],
    )
    timings["validation set"] = _step(
        "2. a generated validation set (seeded, not used in training)",
        "synth",
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
    print("\n=== demo finished: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    print(f"outputs in {out}/: onnx/ (models, INT8 report), run/ (annotated video, detections.jsonl), bench/")
    return 0
