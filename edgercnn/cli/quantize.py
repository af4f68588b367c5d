"""Quantize an FP32 ONNX model to INT8 (Q/DQ) for onnxruntime CPUs and TensorRT, write a TensorRT 10
calibration cache and an accuracy report.

Exits 1 when a variant loses more AP than ``--max-ap-drop`` allows (the files are still written).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edgercnn.export.quantize.pipeline import (
    CPU_LAYOUTS,
    VARIANTS,
    QuantizeOptions,
    quantize_model,
)
from edgercnn.export.quantize.ranges import METHODS
from edgercnn.runtime.validators import (
    existing_dir_arg,
    existing_file_arg,
    non_negative_float_arg,
    output_dir_arg,
    positive_int_arg,
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--onnx", type=existing_file_arg, required=True, help="FP32 ONNX model written by 'edgercnn export'"
    )
    parser.add_argument(
        "--calib",
        type=existing_dir_arg,
        required=True,
        help="calibration set folder (calib_data/synth, 'edgercnn calibrate')",
    )
    parser.add_argument(
        "--out", type=output_dir_arg, default=None, help="output folder (default: beside the model)"
    )
    parser.add_argument("--method", default="entropy", choices=sorted(METHODS), help="calibration method")
    parser.add_argument("--variant", default="cpu,tensorrt", help="comma list of: " + ", ".join(VARIANTS))
    parser.add_argument(
        "--cpu-layout",
        default="auto",
        choices=("auto", *CPU_LAYOUTS),
        help="auto: measure both, keep the faster",
    )
    parser.add_argument(
        "--max-ap-drop",
        type=non_negative_float_arg,
        default=0.5,
        help="box and mask AP points allowed to be lost",
    )
    parser.add_argument(
        "--max-keypoint-ap-drop", type=non_negative_float_arg, default=1.0, help="keypoint AP points allowed"
    )
    parser.add_argument(
        "--eval-images", type=existing_dir_arg, default=None, help="evaluation images folder (COCO set)"
    )
    parser.add_argument(
        "--eval-ann", type=existing_file_arg, default=None, help="evaluation COCO annotation JSON"
    )
    parser.add_argument(
        "--eval-limit", type=positive_int_arg, default=None, help="evaluate on the first N images only"
    )
    parser.add_argument(
        "--calib-limit", type=positive_int_arg, default=None, help="use N calibration images (evenly spaced)"
    )
    parser.add_argument("--keep-float", default="", help="comma list of node names to keep in float")
    parser.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default per-channel)")
    parser.add_argument(
        "--threads", type=positive_int_arg, default=2, help="CPU threads for calibration and timing"
    )
    parser.add_argument(
        "--trt-version", type=positive_int_arg, default=None, help="TensorRT version in the cache header"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def options_from_args(args: argparse.Namespace) -> QuantizeOptions:
    options = QuantizeOptions(
        method=args.method,
        variants=tuple(v.strip() for v in args.variant.split(",") if v.strip()),
        cpu_layout=args.cpu_layout,
        max_ap_drop=args.max_ap_drop,
        max_keypoint_ap_drop=args.max_keypoint_ap_drop,
        eval_images=args.eval_images,
        eval_ann=args.eval_ann,
        eval_limit=args.eval_limit,
        calib_limit=args.calib_limit,
        per_channel=not args.per_tensor,
        keep_float=tuple(n.strip() for n in args.keep_float.split(",") if n.strip()),
        threads=args.threads,
        progress=not args.no_progress,
    )
    if args.trt_version is not None:
        options.trt_version = args.trt_version
    return options


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("edgercnn.quantize").setLevel(logging.INFO)
    out = Path(args.out) if args.out else Path(args.onnx).parent
    report = quantize_model(args.onnx, args.calib, out, options_from_args(args))
    print(report.to_markdown())
    failed = [name for name, v in report.variants.items() if v.within_budget is False]
    if failed:
        print(f"edgercnn quantize: AP budget not met for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
